"""Checks on a path that fastnn will write (a checkpoint, a plot, a JSON report),
made before any work starts so that a bad path fails in a second, not after training.
"""
from __future__ import annotations

import os


def check_output_path(path, name: str = "path") -> str:
    """``path`` as a ``str``, or a ``ValueError``/``TypeError`` naming ``name``.

    A file may be written there: ``path`` is not empty, is not a folder (nor any other
    existing non-file, such as a device), and its folder exists, is a folder and is
    writable (``os.access``, which also sees read-only file systems). Nothing is
    created; the file itself need not exist.

    Parameters
    ----------
    path : str or os.PathLike
        The file to be written.
    name : str
        The argument's name in the messages (``"checkpoint"``, ``"--save"``, ...).

    Returns
    -------
    str
        ``os.fspath(path)`` (bytes paths decoded with :func:`os.fsdecode`).
    """
    if path is None or isinstance(path, bool):
        raise TypeError(f"{name}: expected a file path (str or os.PathLike), got {type(path).__name__}")
    try:
        p = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a file path (str or os.PathLike), "
                        f"got {type(path).__name__}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p:
        raise ValueError(f"{name}: expected a file path, got an empty string")
    if "\0" in p:
        raise ValueError(f"{name}: a path cannot contain a NUL character, got {p!r}")
    if os.path.isdir(p):
        raise ValueError(f"{name}: {p} is a folder; expected the path of a file (in it, or elsewhere)")
    if os.path.lexists(p) and not os.path.isfile(p):
        raise ValueError(f"{name}: {p} exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.exists(folder):
        raise ValueError(f"{name}: the folder {folder} does not exist (for {p})")
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: {folder} is not a folder (for {p})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: the folder {folder} is not writable (for {p})")
    return p
