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


def test_the_table_gives_the_local_seam_ratio_in_brackets_where_a_row_has_one(bench):
    samples = {f"{t:g}": {"detected": 0.75, "frechet": 0.11, "seam": 1.2} for t in bench.TEMPERATURES}
    old = {"train_minutes": 20.0, "psnr_db": 21.4, "identity_kept": 0.3, "median_distance": 0.63,
           "frechet_reconstructions": 0.126, "seam_reconstructions": 1.234, "samples": samples}
    new = {**old, "local_seam_reconstructions": 1.067,
           "samples": {t: {**s, "local_seam": 1.059} for t, s in samples.items()}}
    rows = [line for line in bench.render_markdown({"old": old, "new": new}, "cmd").splitlines()
            if line.startswith(("| old", "| new"))]
    assert rows[0].split(" | ")[6:8] == ["1.23", "75%"] and "(" not in rows[0]
    assert rows[1].split(" | ")[6] == "1.23 (1.07)" and rows[1].count("1.20 (1.06)") == len(bench.TEMPERATURES)


def test_training_minutes_cover_every_session_and_say_when_they_cannot(bench):
    assert bench.training_minutes({"train_seconds": 5580.0, "train_seconds_this_session": 2634.0}) == (93.0, None)
    unknown = {"train_seconds": None, "train_seconds_this_session": 2634.0}  # a session was interrupted
    assert bench.training_minutes(unknown) == (43.9, "last session")
    assert bench.training_minutes({"train_seconds_this_session": 1200.0}) == (20.0, "last session")  # an older file
    row = {"train_minutes": 43.9, "train_minutes_note": "last session", "psnr_db": 20.5, "identity_kept": 0.32,
           "median_distance": 0.6, "frechet_reconstructions": 0.127, "seam_reconstructions": 1.07,
           "samples": {f"{t:g}": {"detected": 0.85, "frechet": 0.12, "seam": 1.08} for t in bench.TEMPERATURES}}
    assert "| r | 43.9 (last session) | 20.5 |" in bench.render_markdown({"r": row}, "cmd")


def test_the_judge_line_says_whether_a_row_was_read_by_one_judge_or_an_ensemble(bench):
    samples = {f"{t:g}": {"detected": 0.9, "frechet": 0.11, "seam": 1.1} for t in bench.TEMPERATURES}
    quality = {"originals": {"accuracy": 0.89}, "reconstructions": {"accuracy": 0.88}}
    edit = {"faces": 15, "reconstruction_reads_target": 0.4, "1x": {"success": 0.93, "others_unchanged": 0.93},
            "2x": {"success": 1.0}}

    def row(source):
        return {"train_minutes": 10.7, "psnr_db": 23.9, "identity_kept": 0.77, "median_distance": 0.55,
                "frechet_reconstructions": 0.1, "seam_reconstructions": 1.15, "samples": samples,
                "edits": {"judge": {"male": quality}, "judge_source": source,
                          "edits": {"glasses": {"add": edit, "remove": edit}}}}

    members = [{"status": "loaded", "seed": 0}, {"status": "trained", "seed": 1}, {"status": "loaded", "seed": 2}]
    text = bench.render_markdown({"one": row({"status": "loaded"}), "three": row(members)}, "cmd")
    assert "one: male acc. 0.89 (recon. 0.88) [judge loaded]" in text
    assert "three: male acc. 0.89 (recon. 0.88) [3 judges loaded/trained]" in text
    assert "| three | remove glasses | 15 | 40% | 93% | 100% | 93% | - |" in text
