"""Options of the pytest-benchmark suite in ``benches/``."""


def pytest_addoption(parser):
    parser.addoption("--bench-dtype", default="float32", choices=("float32", "float64", "both"),
                     help="dtype of the benchmark cases in benches/ (default float32)")
