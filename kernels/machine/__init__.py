"""Machine helpers of the jit kernels: no course mathematics here.

exp and log (vectorisable, with their error bounds), the scalar exp/log/sigmoid the
kernels call, register-tiled GEMM, BLAS called from compiled code, the AVX-512 row
gathers, atomics for the persistent epoch, the finite-input check. Modules here and
in ``fast/`` may share underscore names with each other; the operation modules one
level up import only public names from them.
"""
