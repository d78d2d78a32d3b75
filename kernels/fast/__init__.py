"""The tuned jit bodies the operation modules' dispatchers call.

``kernels/softmax.py`` and its siblings show an operation's formula, its loop and
vectorized forms and its registered jit entry point; what makes the jit form fast
(blocking, transposed short rows, register tiles, the parallel variants, the kernels
the training epoch shares) lives here, one module per operation module. Modules here
and in ``machine/`` may share underscore names with each other; the operation modules
import only public names from them.
"""
