"""benchmarks/real_faces.py: a run is measured on held-out faces of its own size."""
import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_faces", os.path.join(REPO, "benchmarks", "real_faces.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_of_another_size_is_a_one_line_error_naming_the_flag(bench, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"model": {"image_size": 64}}))
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--run", f"r={run}", "--image-size", "128", "--src", str(tmp_path), "--work", str(tmp_path / "w")])
    assert stopped.value.code == 2
    assert f"--run r={run} was trained at 64 px; add --image-size 64" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before any shard is made
