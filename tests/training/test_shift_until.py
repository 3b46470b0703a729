"""--shift-until: the first share of the epochs trains on translated images, the rest on the images as they are."""
import pytest
import tensorflow as tf
import keras

from facevae.config import DataConfig
from facevae.model.objective import LOSS_TERMS
from facevae.training.loop import EpochLoop


def test_the_aligned_epochs_start_at_the_ceiling_of_the_share():
    data = DataConfig(dataset="folder", shift=1, shift_until=0.7)
    assert data.shift_off_epoch(100) == 70 and data.shift_off_epoch(30) == 21 and data.shift_off_epoch(3) == 3
    assert DataConfig(dataset="folder", shift=1).shift_off_epoch(100) is None  # every epoch shifted
    assert DataConfig(dataset="folder", shift=0).shift_off_epoch(100) is None  # none is
    for bad, message in ((0.0, "not a share of the epochs"), (1.5, "not a share of the epochs")):
        with pytest.raises(ValueError, match=message):
            DataConfig(dataset="folder", shift=1, shift_until=bad).validate()
    with pytest.raises(ValueError, match="stops a shift that is off; pass --shift N too"):
        DataConfig(dataset="folder", shift=0, shift_until=0.5).validate()


class _Guard:
    where = None


def _steps_per_epoch(initial_epoch: int, aligned_from) -> list[int]:
    """Steps the loop takes in each epoch when 'shifted' data has 2 batches and 'aligned' data 3."""
    shifted = tf.data.Dataset.from_tensor_slices(tf.zeros([2, 1])).batch(1)
    aligned = tf.data.Dataset.from_tensor_slices(tf.ones([3, 1])).batch(1)
    steps = []

    def sums(batch, index=None):
        return {**{name: tf.constant(0.0) for name in LOSS_TERMS}, "count": tf.constant(1.0)}

    def train_step(batch):
        steps[-1] += 1
        return sums(batch)

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            steps.append(0)

    loop = EpochLoop(keras.Sequential(), tf.distribute.get_strategy(), shifted, shifted.take(1), train_step,
                     sums, None,
                     aligned_from=None if aligned_from is None else (aligned_from, aligned))
    loop.run(keras.callbacks.CallbackList([Epochs()]), initial_epoch, 4, _Guard())
    assert (loop.train_data is aligned) == (aligned_from is not None and aligned_from < 4)
    return steps


def test_the_loop_switches_to_the_aligned_data_at_its_epoch_and_on_resume_after_it():
    assert _steps_per_epoch(0, None) == [2, 2, 2, 2]
    assert _steps_per_epoch(0, 2) == [2, 2, 3, 3]
    assert _steps_per_epoch(3, 2) == [3]  # a run resumed after the switch trains on aligned images at once


@pytest.mark.integration
def test_fit_trains_the_last_epochs_and_fits_batchnorm_and_prior_on_aligned_images(tmp_path, monkeypatch):
    from PIL import Image

    from data_prep.prepare import prepare_dataset
    from data_prep.synthetic import generate_faces
    from facevae.data.datasets import training_data
    from facevae.training import trainer
    from tiny_config import make_tiny_config

    raw = tmp_path / "faces"
    raw.mkdir()
    for i, image in enumerate(generate_faces(40, size=32, seed=2)[0]):
        Image.fromarray(image).save(raw / f"{i:03d}.png")
    shards = str(tmp_path / "shards")
    prepare_dataset("folder", str(raw), shards, size=32, progress=False)
    config = make_tiny_config(tmp_path, dataset="folder", data_dir=shards, shift=1, shift_until=0.5, epochs=2,
                              batch_size=8, precise_bn_batches=1, prior="gmm")
    data = training_data(config)
    seen = []
    recalibrate = trainer.recalibrate_batch_norm
    monkeypatch.setattr(trainer, "recalibrate_batch_norm",
                        lambda model, train, batches: seen.append(train) or recalibrate(model, train, batches))
    fitted = []
    fit_prior = trainer.fit_and_save_prior
    monkeypatch.setattr(trainer, "fit_and_save_prior",
                        lambda model, run, train, *a, **k: fitted.append(train) or fit_prior(model, run, train, *a, **k))
    trainer.fit(config, data=data, verbose=0)
    # before validation of epoch 0 (shifted), of epoch 1 (aligned), then before export
    assert [t is data.aligned_train for t in seen] == [False, True, True] and seen[0] is data.train
    assert fitted == [data.aligned_train]
