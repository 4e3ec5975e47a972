"""One torch thread per test, for the test modules outside tests/agents (which has its conftest).

Repeatable float results and no oversubscription on small CI machines. Import the fixture into a
test module to switch it on there (``from torch_threads import one_torch_thread``); it is not in a
root conftest because the env and dataset tests must run without importing torch.
"""

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
