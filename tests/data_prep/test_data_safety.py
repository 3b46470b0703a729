"""data_prep never deletes or replaces a file it did not write, and one writer at a time holds --out.

Issue 15 items 3 (decoy files), 4 (lock of --out) and the one-line errors for a bad --out.
"""
import json
import os
import socket
import subprocess
import sys

import pytest

from data_prep import cli
from data_prep.errors import DataError, OutputLockedError
from data_prep.locking import LOCK_NAME, DirectoryLock
from data_prep.prepare import prepare_dataset
from data_files import random_images, write_images

DECOYS = {"backup-of-march.tfrecord.gz": b"a user's backup", "notes.txt": b"my notes",
          "old-00000-of-00002.tfrecord": b"kept by the user"}


def _decoys(out):
    out.mkdir(parents=True, exist_ok=True)
    for name, data in DECOYS.items():
        (out / name).write_bytes(data)


def _decoys_intact(out):
    return all((out / name).read_bytes() == data for name, data in DECOYS.items())


@pytest.fixture
def main(monkeypatch):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["data_prep.prepare_cli", "data_prep.inspect_cli"])
    return cli.main


def test_a_user_file_named_like_a_planned_shard_is_replaced_only_with_overwrite(tmp_path):
    write_images(tmp_path / "src", random_images(6, 16))
    out = tmp_path / "out"
    _decoys(out)
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"the user's own file")
    options = dict(size=32, shards=1, validation_fraction=0.0, progress=False)
    with pytest.raises(DataError, match=r"train-00000-of-00001.tfrecord: already exists and was not written by this "
                                        r"preparation; move it away, or pass --overwrite"):
        prepare_dataset("folder", str(tmp_path / "src"), str(out), **options)
    assert (out / "train-00000-of-00001.tfrecord").read_bytes() == b"the user's own file" and _decoys_intact(out)
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(out), overwrite=True, **options)
    assert manifest["splits"]["train"] == 6 and _decoys_intact(out)
    assert sorted(os.listdir(out)) == sorted([*DECOYS, "manifest.json", "train-00000-of-00001.tfrecord"])


@pytest.mark.parametrize("overwrite", [False, True])
def test_clean_up_after_a_failed_run_deletes_only_what_it_planned(tmp_path, overwrite):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "only.png").write_text("not an image")
    out = tmp_path / "out"
    _decoys(out)
    with pytest.raises(DataError, match="no usable image among 1 file"):
        prepare_dataset("folder", str(tmp_path / "src"), str(out), size=32, overwrite=overwrite, progress=False)
    assert sorted(os.listdir(out)) == sorted(DECOYS) and _decoys_intact(out)


def test_overwrite_replaces_the_earlier_shards_and_nothing_else(tmp_path):
    write_images(tmp_path / "src", random_images(20, 16))
    out = tmp_path / "out"
    _decoys(out)
    first = prepare_dataset("folder", str(tmp_path / "src"), str(out), size=32, shards=3, progress=False)
    second = prepare_dataset("folder", str(tmp_path / "src"), str(out), size=28, shards=2, overwrite=True,
                             progress=False)
    old = {shard["file"] for shard in first["shards"]} - {shard["file"] for shard in second["shards"]}
    assert old and not any((out / name).exists() for name in old)
    assert sorted(os.listdir(out)) == sorted([*DECOYS, "manifest.json", *(s["file"] for s in second["shards"])])
    assert _decoys_intact(out)


def test_overwrite_never_deletes_a_manifest_json_data_prep_did_not_write(tmp_path):
    write_images(tmp_path / "src", random_images(4, 16))
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"my": "own manifest"}')
    with pytest.raises(DataError, match=r"manifest.json: not a data_prep manifest this version can read, so "
                                        r"--overwrite leaves it and the files it may list alone; move it away"):
        prepare_dataset("folder", str(tmp_path / "src"), str(out), size=32, overwrite=True, progress=False)
    assert (out / "manifest.json").read_text() == '{"my": "own manifest"}'


def test_an_unfinished_preparation_is_cleared_by_overwrite_through_its_marker(tmp_path, monkeypatch):
    import data_prep.writer as writer

    write_images(tmp_path / "src", random_images(30, 16))
    out = tmp_path / "out"
    _decoys(out)
    real, calls = writer._write_one, []

    def interrupted(out_dir, plan, *rest):
        if calls:
            (out / f"{plan.name}.tmp").write_bytes(b"half")  # as a SIGKILL during a shard would leave it
            raise KeyboardInterrupt
        calls.append(plan.name)
        return real(out_dir, plan, *rest)

    monkeypatch.setattr(writer, "_write_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("folder", str(tmp_path / "src"), str(out), size=32, shards=3, progress=False)
    monkeypatch.setattr(writer, "_write_one", real)
    with pytest.raises(DataError, match="holds an unfinished preparation of other data or settings; pass --overwrite"):
        prepare_dataset("folder", str(tmp_path / "src"), str(out), size=28, shards=2, progress=False)
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(out), size=28, shards=2, overwrite=True,
                               progress=False)
    assert sorted(os.listdir(out)) == sorted([*DECOYS, "manifest.json", *(s["file"] for s in manifest["shards"])])
    assert _decoys_intact(out)


_HOLDER = """
import sys, time
from data_prep.locking import DirectoryLock
lock = DirectoryLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_gets_one_line_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path, main, capsys):
    write_images(tmp_path / "src", random_images(6, 16))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), *sys.path]))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = ["folder", "--src", str(tmp_path / "src"), "--out", str(out), "--size", "32", "--quiet"]
        assert main(args) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1, error
        assert f"--out {out}: in use by another writer (pid {holder.pid} on {socket.gethostname()}, since " in error
        assert "wait for it to finish or choose another --out" in error
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # SIGKILL left the lock file behind
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"took over a stale lock of pid {holder.pid} on {socket.gethostname()}" in captured.err
    assert "wrote 6 images" in captured.out and not (out / LOCK_NAME).exists()


def test_lock_in_one_process_refuses_a_second_holder_and_is_released(tmp_path):
    with DirectoryLock(str(tmp_path)):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(OutputLockedError, match=f"in use by another writer \\(pid {os.getpid()} on "):
            DirectoryLock(str(tmp_path)).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    with DirectoryLock(str(tmp_path)):  # free again
        pass


def test_lock_of_another_host_or_a_foreign_file_is_not_taken(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "2026-01-01T00:00:00",
                                "command": "python -m data_prep ffhq"}))
    with pytest.raises(OutputLockedError, match=f"locked by pid 1 on elsewhere.example.*another host.*if that job has "
                                                f"ended, delete {lock}"):
        DirectoryLock(str(tmp_path)).acquire()
    lock.write_text("my own file that happens to have this name")
    with pytest.raises(DataError, match="exists and is not a lock file this tool wrote"):
        DirectoryLock(str(tmp_path)).acquire()
    assert lock.read_text() == "my own file that happens to have this name"


def test_stale_lock_of_a_dead_pid_is_taken_over_with_a_note(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x",
                                                  "command": "c"}))
    notes = []
    with DirectoryLock(str(tmp_path), note=notes.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert notes == [f"note: {tmp_path / LOCK_NAME}: took over a stale lock of pid {dead.pid} on "
                     f"{socket.gethostname()}, since x: c (that writer has ended)"]


def test_out_that_is_a_file_is_one_line(tmp_path, main, capsys):
    write_images(tmp_path / "src", random_images(3, 16))
    (tmp_path / "taken").write_text("a file")
    assert main(["folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "taken"), "--size", "32"]) == 2
    error = capsys.readouterr().err
    assert error == f"error: --out {tmp_path / 'taken'}: is a file, not a folder; choose a folder path\n"
    assert main(["folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "taken" / "sub"), "--size", "32"]) == 2
    assert "is a file, so the folder cannot be created" in capsys.readouterr().err


def _read_only_folder(tmp_path):
    """A folder this process cannot write: chmod 555 for a normal user; /proc/sys for root (always read-only)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if not os.access("/proc/sys", os.W_OK):
        return "/proc/sys"
    pytest.skip("no read-only folder available to root here")


def test_out_read_only_is_one_line(tmp_path, main, capsys):
    write_images(tmp_path / "src", random_images(3, 16))
    folder = _read_only_folder(tmp_path)
    out = os.path.join(folder, "shards")
    assert main(["folder", "--src", str(tmp_path / "src"), "--out", out, "--size", "32"]) == 2
    error = capsys.readouterr().err
    assert error == f"error: --out {out}: not writable ({folder} is not writable); choose a folder you can write to\n"


def test_synthetic_replaces_files_only_in_a_folder_it_wrote(tmp_path, capsys):
    out = tmp_path / "pictures"
    (out / "images").mkdir(parents=True)
    (out / "attributes.csv").write_text("my own table")
    (out / "images" / "000001.png").write_bytes(b"my photo")
    args = ["synthetic", "--out", str(out), "--count", "3", "--size", "32"]
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert error == (f"error: {out / 'attributes.csv'} and 1 more of the planned files already exist and were not "
                     "written by `python -m data_prep synthetic`; choose another --out, or pass --overwrite to replace "
                     "them\n")
    assert (out / "attributes.csv").read_text() == "my own table" and (out / "images" / "000001.png").read_bytes() == b"my photo"
    assert cli.main([*args, "--overwrite"]) == 0
    assert (out / "attributes.csv").read_text().startswith("index,")
    assert cli.main(args) == 0  # a folder it wrote: the same command runs again without --overwrite
    fresh = tmp_path / "fresh"
    assert cli.main(["synthetic", "--out", str(fresh), "--count", "2", "--size", "32"]) == 0
    assert sorted(os.listdir(fresh)) == [".data_prep-synthetic.json", "attributes.csv", "images"]


def test_inspect_never_replaces_a_contact_sheet_it_did_not_write(tmp_path, main, capsys):
    write_images(tmp_path / "src", random_images(6, 32))
    assert main(["folder", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--size", "32",
                 "--quiet"]) == 0
    mine = tmp_path / "out" / "contact_sheet.png"
    write_images(tmp_path / "pictures", random_images(1, 16), names=["contact_sheet"])
    user_png = (tmp_path / "pictures" / "contact_sheet.png").read_bytes()
    mine.write_bytes(user_png)
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{mine}: exists and is not a contact sheet written by data_prep inspect" in error
    assert mine.read_bytes() == user_png
    mine.unlink()
    assert main(["inspect", str(tmp_path / "out")]) == 0  # its own sheet, written again, is replaced
    first = mine.read_bytes()
    assert main(["inspect", str(tmp_path / "out"), "--count", "3"]) == 0
    assert mine.read_bytes() != first and "contact sheet:" in capsys.readouterr().out


def test_a_remote_out_is_not_locked_and_says_so():
    notes = []
    with DirectoryLock("gs://bucket/shards", flag="--out", note=notes.append):
        pass
    assert notes == ["note: --out gs://bucket/shards is not locked (gs:// and s3:// have no exclusive create); "
                     "run one writer at a time into it"]
