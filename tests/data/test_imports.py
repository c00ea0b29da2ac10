from __future__ import annotations

import subprocess
import sys


def test_data_layer_imports_neither_click_nor_ray() -> None:
    code = "import sys, trainables.data; print(sorted({'click', 'ray'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
