"""benchmarks/real_faces.py: a run is measured on held-out faces of its own size."""
import json

import pytest

from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("real_faces")


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
