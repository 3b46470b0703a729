"""The learning-rate schedules of TrainConfig.lr_schedule: the cosine curve read from the optimizer's step, and a
run's config.json reproducing it."""
import json
import math
import os
import types

import pytest
import tensorflow as tf

from facevae.training.schedules import LearningRateSchedule, cosine_rate
from facevae.training.trainer import fit


def _fake_model():
    return types.SimpleNamespace(optimizer=types.SimpleNamespace(iterations=tf.Variable(0, dtype=tf.int64),
                                                                 learning_rate=tf.Variable(0.0)))


def test_cosine_learning_rate_follows_the_optimizer_step():
    """lr_t = lr (1 + cos(pi t / T)) / 2, read from optimizer.iterations (so a resumed run continues the curve)."""
    model = _fake_model()
    schedule = LearningRateSchedule("cosine", 1e-3, epochs=10, steps_per_epoch=10)
    schedule.set_model(model)
    for step, expected in ((0, 1e-3), (50, 5e-4), (100, 0.0), (250, 0.0)):
        model.optimizer.iterations.assign(step)
        schedule.on_train_batch_begin(0)
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert cosine_rate(2.0, 25, 100) == pytest.approx(1.0 + math.cos(math.pi / 4))


def test_resume_without_known_steps_per_epoch_takes_them_from_the_optimizer_step():
    model = _fake_model()
    model.optimizer.iterations.assign(30)  # 3 epochs of 10 steps done
    schedule = LearningRateSchedule("cosine", 1.0, epochs=6, steps_per_epoch=None, initial_epoch=3)
    schedule.set_model(model)
    schedule.on_train_begin()
    assert schedule.total_steps == 60
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.5, abs=1e-6)


def test_constant_schedule_sets_the_configured_rate_once():
    model = _fake_model()
    model.optimizer.learning_rate.assign(0.5)  # e.g. the rate saved in a checkpoint
    schedule = LearningRateSchedule("constant", 1e-4, epochs=3)
    schedule.set_model(model)
    schedule.on_train_begin()
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="Unknown lr_schedule 'step'"):
        LearningRateSchedule("step", 1e-3, epochs=1)


def test_a_cosine_run_records_its_schedule_and_ends_at_zero(tiny_config):
    config = tiny_config(epochs=2, lr_schedule="cosine")
    result = fit(config, verbose=0)
    saved = json.load(open(os.path.join(result.run_dir, "config.json")))
    assert saved["train"]["lr_schedule"] == "cosine"
    # 2 epochs x 6 steps: the last step (t = 11) ran at lr (1 + cos(11 pi / 12)) / 2; the optimizer holds it
    expected = config.train.learning_rate * 0.5 * (1 + math.cos(math.pi * 11 / 12))
    assert float(result.model.optimizer.learning_rate.numpy()) == pytest.approx(expected, rel=1e-5)
