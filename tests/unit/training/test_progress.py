from doughflow.training.progress import read_progress, write_progress
from doughflow.orchestration.artifacts import progress_artifact


def test_progress_file_round_trip_and_fraction(tmp_path):
    assert read_progress(tmp_path) is None
    write_progress(tmp_path, epoch=1, epochs=4, step=5, steps=10, loss=0.5, images_per_second=100.0)
    progress = read_progress(tmp_path)
    assert progress["fraction"] == (1 + 0.5) / 4 and progress["epoch"] == 2 and progress["loss"] == 0.5
    (tmp_path / "progress.json").write_text("{half")
    assert read_progress(tmp_path) is None


def test_progress_artifact_is_a_no_op_outside_a_task_run(tmp_path):
    with progress_artifact(lambda: (read_progress(tmp_path) or {}).get("fraction"), "train-progress-x", "progress"):
        write_progress(tmp_path, epoch=0, epochs=1, step=1, steps=1, loss=None, images_per_second=1.0)
    assert read_progress(tmp_path)["fraction"] == 1.0
