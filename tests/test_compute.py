import subprocess
import sys

import torch
from threadpoolctl import threadpool_info

from giblet.compute import cpu_threads, resolve_device


def test_cpu_threads_limits_torch_and_blas_then_restores():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before


def test_cpu_threads_none_leaves_threads_alone():
    before = torch.get_num_threads()
    with cpu_threads(None):
        assert torch.get_num_threads() == before


def test_resolve_device_auto_and_explicit():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_cpu_threads_limits_torch_imported_inside_the_block_and_imports_none():
    code = ("import sys\nfrom giblet.compute import cpu_threads\nwith cpu_threads(1):\n"
            "    print('torch' in sys.modules)\n    import torch\n    print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "1"]
