import os

# Test arrays are tiny: one BLAS/OpenMP thread per process avoids oversubscribing a shared 2-core CI box. Set
# here, before conftest imports numpy (this package is imported first); subprocesses of the tests inherit it.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
