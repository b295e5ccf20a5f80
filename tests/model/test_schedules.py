"""Learning-rate schedules (fastnn.schedules) and ReduceLROnPlateau.

The schedules are checked against hand-computed values and against Keras 3's
formulas (keras/src/optimizers/schedules/learning_rate_schedule.py) written out
here one step at a time; ReduceLROnPlateau is driven directly with a fake
model (no training), against hand-worked sequences and against Keras's
on_epoch_end written out (keras/src/callbacks/reduce_lr_on_plateau.py).
"""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from fastnn import schedules
from fastnn.callbacks import ReduceLROnPlateau
from fastnn.schedules import (
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    StepDecay,
)

# --- Keras 3's formulas, scalar step, written out ---------------------------


def keras_exponential(step, lr, decay_rate, decay_steps, staircase):
    p = step / decay_steps
    if staircase:
        p = math.floor(p)
    return lr * decay_rate**p


def keras_cosine(step, lr, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, decay_from):
        cosine_decayed = 0.5 * (1.0 + math.cos(math.pi * (s / decay_steps)))
        return decay_from * ((1 - alpha) * cosine_decayed + alpha)

    if warmup_target is None:
        return decay(min(step, decay_steps), lr)
    step = min(step, decay_steps + warmup_steps)
    if step < warmup_steps:
        return (warmup_target - lr) * (step / warmup_steps) + lr
    return decay(step - warmup_steps, warmup_target)


def torch_step_lr(step, lr, step_size, gamma):
    return lr * gamma ** (step // step_size)


STEPS = np.array([0, 1, 2, 5, 9, 10, 11, 49, 50, 99, 100, 101, 150, 1000, 10**6])


# --- hand-computed values ---------------------------------------------------


def test_exponential_decay_values():
    s = ExponentialDecay(0.1, decay_rate=0.5, decay_steps=2)
    np.testing.assert_allclose(
        s(np.array([0, 1, 2, 3, 4])),
        [0.1, 0.1 * 0.5**0.5, 0.05, 0.1 * 0.5**1.5, 0.025],
        rtol=1e-15,
    )
    stair = ExponentialDecay(0.1, decay_rate=0.5, decay_steps=2, staircase=True)
    np.testing.assert_allclose(
        stair(np.array([0, 1, 2, 3, 4])), [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-15
    )
    floor = ExponentialDecay(1.0, decay_rate=0.5, min_learning_rate=0.2)
    np.testing.assert_allclose(floor(np.arange(5)), [1, 0.5, 0.25, 0.2, 0.2])


def test_exponential_decay_defaults_and_config_unchanged():
    """The config and defaults optimizers.ExponentialDecay always had."""
    s = ExponentialDecay(0.05)
    assert s.get_config() == {
        "class": "ExponentialDecay",
        "initial_learning_rate": 0.05,
        "decay_rate": 0.999,
        "decay_steps": 1,
        "staircase": False,
        "min_learning_rate": 0.0,
    }
    assert s(np.array([1000]))[0] == pytest.approx(0.05 * 0.999**1000, rel=1e-14)


def test_step_decay_values():
    s = StepDecay(0.1, step_size=3, gamma=0.5)
    np.testing.assert_allclose(
        s(np.arange(10)),
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125],
        rtol=1e-15,
    )
    floored = StepDecay(1.0, step_size=1, gamma=0.1, min_learning_rate=1e-3)
    np.testing.assert_allclose(floored(np.arange(6)), [1, 0.1, 0.01, 1e-3, 1e-3, 1e-3])
    assert np.all(StepDecay(0.3, step_size=7, gamma=1.0)(STEPS) == 0.3)


def test_cosine_decay_values_without_warmup():
    s = CosineDecay(0.1, decay_steps=100)
    np.testing.assert_allclose(
        s(np.array([0, 25, 50, 75, 100, 101, 10**6])),
        [0.1, 0.1 * (1 + math.sqrt(0.5)) / 2, 0.05, 0.1 * (1 - math.sqrt(0.5)) / 2]
        + [0.0] * 3,
        rtol=1e-14,
        atol=1e-17,
    )
    # alpha: from 0.1 down to alpha * 0.1 = 0.02, and it stays there
    a = CosineDecay(0.1, decay_steps=100, alpha=0.2)
    np.testing.assert_allclose(
        a(np.array([0, 50, 100, 500])), [0.1, 0.06, 0.02, 0.02], rtol=1e-14
    )


def test_cosine_decay_values_with_warmup():
    """From 0.01 up to 0.1 over 10 steps, then 0.1 down to 0.1 * alpha over 20."""
    s = CosineDecay(0.01, decay_steps=20, alpha=0.1, warmup_target=0.1, warmup_steps=10)
    lr = s(np.arange(0, 40))
    # the warm-up: linear, step 0 at initial_learning_rate
    np.testing.assert_allclose(lr[:10], 0.01 + 0.009 * np.arange(10), rtol=1e-14)
    # the boundary: step == warmup_steps is the first decay step, at the target
    assert lr[9] == pytest.approx(0.091, rel=1e-14)
    assert lr[10] == pytest.approx(0.1, rel=1e-15)
    # half-way through the decay: 0.1 * ((1 - 0.1) * 0.5 + 0.1) = 0.055
    assert lr[20] == pytest.approx(0.055, rel=1e-14)
    # the end (warmup_steps + decay_steps) and past it: alpha * warmup_target
    np.testing.assert_allclose(lr[30:], 0.01, rtol=1e-14)
    assert s(np.array([10**7]))[0] == pytest.approx(0.01, rel=1e-14)
    # the warm-up rises, the decay falls
    assert np.all(np.diff(lr[:11]) > 0) and np.all(np.diff(lr[10:31]) < 0)


def test_cosine_warmup_from_zero_and_zero_warmup_steps():
    s = CosineDecay(0.0, decay_steps=4, warmup_target=0.2, warmup_steps=4)
    np.testing.assert_allclose(
        s(np.arange(10)),
        [0.0, 0.05, 0.1, 0.15, 0.2, 0.2 * (1 + math.sqrt(0.5)) / 2, 0.1]
        + [0.2 * (1 - math.sqrt(0.5)) / 2, 0.0, 0.0],
        rtol=1e-14,
        atol=1e-17,
    )
    # a target without warm-up steps: the decay starts from the target at once
    direct = CosineDecay(0.5, decay_steps=10, warmup_target=0.2, warmup_steps=0)
    np.testing.assert_allclose(
        direct(STEPS), CosineDecay(0.2, decay_steps=10)(STEPS), rtol=1e-15
    )


# --- against Keras's formulas; vectorised == elementwise ----------------------


SCHEDULE_CASES = [
    (
        ExponentialDecay(0.1, decay_rate=0.9, decay_steps=7),
        lambda t: keras_exponential(t, 0.1, 0.9, 7, False),
    ),
    (
        ExponentialDecay(0.1, decay_rate=0.9, decay_steps=7, staircase=True),
        lambda t: keras_exponential(t, 0.1, 0.9, 7, True),
    ),
    (
        StepDecay(0.2, step_size=10, gamma=0.3),
        lambda t: torch_step_lr(t, 0.2, 10, 0.3),
    ),
    (CosineDecay(0.1, decay_steps=100), lambda t: keras_cosine(t, 0.1, 100)),
    (
        CosineDecay(0.1, decay_steps=100, alpha=0.05),
        lambda t: keras_cosine(t, 0.1, 100, alpha=0.05),
    ),
    (
        CosineDecay(0.001, 100, alpha=0.1, warmup_target=0.5, warmup_steps=50),
        lambda t: keras_cosine(t, 0.001, 100, 0.1, 0.5, 50),
    ),
    (
        CosineDecay(0.3, 7, warmup_target=0.1, warmup_steps=11),  # warming *down*
        lambda t: keras_cosine(t, 0.3, 7, 0.0, 0.1, 11),
    ),
]


CASE_IDS = [repr(schedule) for schedule, _ in SCHEDULE_CASES]


@pytest.mark.parametrize("schedule,reference", SCHEDULE_CASES, ids=CASE_IDS)
def test_schedule_matches_reference_formula(schedule, reference):
    expected = [reference(int(t)) for t in STEPS]
    np.testing.assert_allclose(schedule(STEPS), expected, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(
        schedule(np.arange(300)), [reference(t) for t in range(300)], rtol=1e-12
    )


@pytest.mark.parametrize("schedule,reference", SCHEDULE_CASES, ids=CASE_IDS)
def test_schedule_vectorised_equals_elementwise(schedule, reference):
    for steps in (STEPS, np.arange(1000, 1100, dtype=np.int64), np.arange(0)):
        out = schedule(steps)
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.float64 and out.shape == steps.shape
        one_by_one = np.array([schedule(np.array([t]))[0] for t in steps])
        np.testing.assert_array_equal(out, one_by_one.reshape(out.shape))
        # chunks, as the trainer asks for them, give the same rates
        if steps.size:
            parts = np.concatenate([schedule(c) for c in np.array_split(steps, 7)])
            np.testing.assert_array_equal(out, parts)
    assert float(schedule(np.int64(5))) == schedule(np.array([5]))[0]


# --- configs ----------------------------------------------------------------


@pytest.mark.parametrize("schedule,reference", SCHEDULE_CASES, ids=CASE_IDS)
def test_config_round_trip(schedule, reference):
    config = schedule.get_config()
    assert config["class"] == type(schedule).__name__
    # JSON-ready: survives a trip through a model file's JSON header
    config = json.loads(json.dumps(config, allow_nan=False))
    again = schedules.get(config)
    assert type(again) is type(schedule)
    assert again.get_config() == schedule.get_config()
    np.testing.assert_array_equal(again(STEPS), schedule(STEPS))
    assert repr(again) == repr(schedule)
    assert repr(schedule).startswith(type(schedule).__name__ + "(")
    assert schedules.get(schedule) is schedule
    assert config == schedule.get_config()  # get() did not consume the dict


def test_repr():
    assert repr(StepDecay(0.1, 5)) == (
        "StepDecay(initial_learning_rate=0.1, step_size=5, gamma=0.1, "
        "min_learning_rate=0.0)"
    )
    assert repr(CosineDecay(0.1, 10)) == (
        "CosineDecay(initial_learning_rate=0.1, decay_steps=10, alpha=0.0, "
        "warmup_target=None, warmup_steps=0)"
    )


def test_get_refuses_bad_configs():
    with pytest.raises(ValueError, match="unknown schedule class 'PolynomialDecay'"):
        schedules.get({"class": "PolynomialDecay", "initial_learning_rate": 0.1})
    with pytest.raises(ValueError, match="'class' key"):
        schedules.get({"initial_learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"unexpected keys \['name'\] for StepDecay"):
        schedules.get(
            {"class": "StepDecay", "initial_learning_rate": 0.1, "step_size": 2}
            | {"name": "x"}
        )
    with pytest.raises(TypeError, match="config_or_schedule: expected"):
        schedules.get(0.1)
    with pytest.raises(ValueError, match="^step_size: expected an int >= 1"):
        schedules.get(
            {"class": "StepDecay", "initial_learning_rate": 0.1} | {"step_size": 0}
        )


def test_base_class_is_abstract():
    class Half(LearningRateSchedule):
        pass

    with pytest.raises(NotImplementedError, match="Half does not implement"):
        Half()(np.arange(3))
    with pytest.raises(NotImplementedError, match="get_config"):
        Half().get_config()
    for cls in (ExponentialDecay, StepDecay, CosineDecay):
        assert issubclass(cls, LearningRateSchedule)


# --- argument checks --------------------------------------------------------


@pytest.mark.parametrize(
    "make,error,message",
    [
        # ExponentialDecay: the checks (and error types) it always had
        (lambda: ExponentialDecay(0), ValueError, "^initial_learning_rate: .*> 0"),
        (lambda: ExponentialDecay("0.1"), TypeError, "^initial_learning_rate: "),
        (lambda: ExponentialDecay(0.1, decay_rate=1.5), ValueError, "^decay_rate: "),
        (lambda: ExponentialDecay(0.1, decay_rate=0), ValueError, "^decay_rate: "),
        (lambda: ExponentialDecay(0.1, decay_steps=0), ValueError, "^decay_steps: "),
        (lambda: ExponentialDecay(0.1, decay_steps=2.0), ValueError, "^decay_steps: "),
        (
            lambda: ExponentialDecay(0.1, min_learning_rate=-1),
            ValueError,
            "^min_learning_rate: ",
        ),
        # StepDecay
        (lambda: StepDecay(-0.1, 5), ValueError, "^initial_learning_rate: .*> 0"),
        (lambda: StepDecay(math.inf, 5), ValueError, "^initial_learning_rate: "),
        (lambda: StepDecay(math.nan, 5), ValueError, "^initial_learning_rate: "),
        (lambda: StepDecay(0.1, 0), ValueError, r"^step_size: expected an int >= 1"),
        (lambda: StepDecay(0.1, -3), ValueError, "^step_size: .*received -3"),
        (lambda: StepDecay(0.1, 2.5), TypeError, "^step_size: .*received 2.5"),
        (lambda: StepDecay(0.1, True), TypeError, "^step_size: "),
        (lambda: StepDecay(0.1, 5, gamma=0), ValueError, r"^gamma: .*> 0 and <= 1"),
        (lambda: StepDecay(0.1, 5, gamma=1.01), ValueError, "^gamma: .*received 1.01"),
        (lambda: StepDecay(0.1, 5, gamma=None), TypeError, "^gamma: expected a number"),
        (
            lambda: StepDecay(0.1, 5, min_learning_rate=-0.1),
            ValueError,
            "^min_learning_rate: .*>= 0",
        ),
        # CosineDecay
        (lambda: CosineDecay(0, 10), ValueError, "^initial_learning_rate: .*> 0"),
        (lambda: CosineDecay(-0.1, 10, warmup_target=0.1), ValueError, "^initial_"),
        (lambda: CosineDecay(0.1, 0), ValueError, "^decay_steps: expected an int >= 1"),
        (lambda: CosineDecay(0.1, 10.0), TypeError, "^decay_steps: .*received 10.0"),
        (lambda: CosineDecay(0.1, 10, alpha=-0.1), ValueError, r"^alpha: .*>= 0"),
        (lambda: CosineDecay(0.1, 10, alpha=1.5), ValueError, r"^alpha: .*<= 1"),
        (
            lambda: CosineDecay(0.1, 10, warmup_target=0, warmup_steps=5),
            ValueError,
            "^warmup_target: .*> 0",
        ),
        (
            lambda: CosineDecay(0.1, 10, warmup_target="1", warmup_steps=5),
            TypeError,
            "^warmup_target: expected a number",
        ),
        (
            lambda: CosineDecay(0.1, 10, warmup_target=0.5, warmup_steps=-1),
            ValueError,
            "^warmup_steps: expected an int >= 0; received -1",
        ),
        (
            lambda: CosineDecay(0.1, 10, warmup_target=0.5, warmup_steps=2.0),
            TypeError,
            "^warmup_steps: ",
        ),
        (
            lambda: CosineDecay(0.1, 10, warmup_steps=5),
            ValueError,
            "^warmup_steps: a warm-up needs warmup_target",
        ),
    ],
)
def test_bad_arguments_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_numpy_scalars_are_accepted():
    s = StepDecay(np.float32(0.5), np.int64(4), gamma=np.float64(0.5))
    assert s.get_config() == {
        "class": "StepDecay",
        "initial_learning_rate": 0.5,
        "step_size": 4,
        "gamma": 0.5,
        "min_learning_rate": 0.0,
    }
    assert type(s.step_size) is int
    json.dumps(CosineDecay(np.float64(0.1), np.int32(3)).get_config())


# --- ReduceLROnPlateau --------------------------------------------------------


def fake_model():
    return SimpleNamespace(
        optimizer=SimpleNamespace(learning_rate_scale=1.0), stop_training=False
    )


def drive(cb, values, base_lr=0.1, monitor="val_loss", model=None, begin=True):
    """Feed ``values`` as epochs' ``monitor``; the rate after each epoch.
    The "trainer" reports base_lr * learning_rate_scale as logs["learning_rate"]."""
    model = model or fake_model()
    cb.set_model(model)
    if begin:
        cb.on_train_begin({"epochs": len(values), "steps": 1})
    rates = []
    for epoch, value in enumerate(values):
        logs = {"loss": 1.0, monitor: value}
        logs["learning_rate"] = base_lr * model.optimizer.learning_rate_scale
        cb.on_epoch_end(epoch, logs)
        rates.append(base_lr * model.optimizer.learning_rate_scale)
        assert model.stop_training is False
    return rates


def keras_reduce_lr(values, lr, factor, patience, min_delta, cooldown, min_lr, mode):
    """Keras 3's ReduceLROnPlateau.on_epoch_end, written out: the rate after
    each epoch."""
    best = math.inf if mode == "min" else -math.inf
    wait = cooldown_counter = 0
    rates = []
    for current in values:
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        better = (
            current < best - min_delta if mode == "min" else current > best + min_delta
        )
        if better:
            best, wait = current, 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                if lr > min_lr:
                    lr = max(lr * factor, min_lr)
                    cooldown_counter, wait = cooldown, 0
        rates.append(lr)
    return rates


def test_reduce_lr_patience():
    cb = ReduceLROnPlateau(patience=2, factor=0.5)
    rates = drive(cb, [1.0, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8])
    # best 0.9 at epoch 1; epochs 2, 3 do not improve -> x0.5 after epoch 3;
    # 0.8 improves at epoch 4; 5, 6 do not -> x0.5; 7, 8 do not -> x0.5
    np.testing.assert_allclose(
        rates, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.0125]
    )
    assert cb.wait == 0 and cb.best == 0.8


def test_reduce_lr_patience_zero_and_default_factor():
    rates = drive(ReduceLROnPlateau(patience=0), [1.0, 1.0, 0.5, 0.6])
    np.testing.assert_allclose(rates, [0.1, 0.01, 0.01, 0.001])


def test_reduce_lr_min_delta():
    # improvements by less than min_delta=0.05 do not count
    cb = ReduceLROnPlateau(patience=2, factor=0.5, min_delta=0.05)
    np.testing.assert_allclose(
        drive(cb, [1.0, 0.97, 0.96, 0.5]), [0.1, 0.1, 0.05, 0.05]
    )
    assert cb.best == 0.5
    # ... and improvements by more do
    cb = ReduceLROnPlateau(patience=2, factor=0.5, min_delta=0.05)
    np.testing.assert_allclose(drive(cb, [1.0, 0.94, 0.88, 0.82]), [0.1] * 4)
    # the comparison is current < best - min_delta, strictly
    cb = ReduceLROnPlateau(patience=1, factor=0.5, min_delta=0.25)
    np.testing.assert_allclose(drive(cb, [1.0, 0.75]), [0.1, 0.05])


def test_reduce_lr_cooldown():
    cb = ReduceLROnPlateau(patience=1, factor=0.5, cooldown=2)
    rates = drive(cb, [1.0] * 8)
    # reduce after epoch 1 (cooldown_counter = 2); epoch 2 takes it to 1 and
    # does not count; epoch 3 takes it to 0 and, as in Keras, counts in the same
    # epoch, so with patience=1 the next reduction is after epoch 3
    np.testing.assert_allclose(
        rates, [0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625]
    )
    assert rates == pytest.approx(
        keras_reduce_lr([1.0] * 8, 0.1, 0.5, 1, 1e-4, 2, 0.0, "min")
    )
    # a longer cooldown holds the rate for longer
    rates = drive(ReduceLROnPlateau(patience=1, factor=0.5, cooldown=4), [1.0] * 8)
    np.testing.assert_allclose(
        rates, [0.1, 0.05, 0.05, 0.05, 0.05, 0.025] + [0.025] * 2
    )


def test_reduce_lr_min_lr_floor():
    model = fake_model()
    cb = ReduceLROnPlateau(patience=1, factor=0.1, min_lr=0.002, verbose=0)
    rates = drive(cb, [1.0] * 6, model=model)
    np.testing.assert_allclose(rates, [0.1, 0.01, 0.002, 0.002, 0.002, 0.002])
    # at the floor (to rounding: 0.1 * 0.1 * 0.2 is not exactly 0.002), nothing
    # changes and no cooldown starts; wait keeps counting, as in Keras
    assert model.optimizer.learning_rate_scale == pytest.approx(0.02)
    assert cb.cooldown_counter == 0 and cb.wait == 3


def test_reduce_lr_scales_a_schedule():
    """The scale multiplies whatever the schedule gives: its shape is kept."""
    schedule = CosineDecay(0.1, decay_steps=50)
    model = fake_model()
    cb = ReduceLROnPlateau(patience=0, factor=0.5)
    cb.set_model(model)
    cb.on_train_begin({})
    steps_per_epoch = 10
    for epoch, value in enumerate([1.0, 1.0, 1.0]):
        scale = model.optimizer.learning_rate_scale
        next_rate = scale * schedule(np.array([(epoch + 1) * steps_per_epoch]))[0]
        cb.on_epoch_end(epoch, {"val_loss": value, "learning_rate": next_rate})
    assert model.optimizer.learning_rate_scale == pytest.approx(0.25)


def test_reduce_lr_mode_max_with_accuracy():
    # "auto" on an accuracy is "max"
    cb = ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.5)
    assert cb.mode == "max"
    rates = drive(cb, [0.5, 0.6, 0.55, 0.7, 0.7], monitor="val_accuracy")
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.05, 0.05, 0.025])
    # an explicit "max" on a loss is obeyed: a falling loss is no improvement
    cb = ReduceLROnPlateau(monitor="val_loss", mode="max", patience=1, factor=0.5)
    np.testing.assert_allclose(drive(cb, [1.0, 0.9, 0.8]), [0.1, 0.05, 0.025])
    # and "min" on an accuracy
    cb = ReduceLROnPlateau(monitor="accuracy", mode="min", patience=1, factor=0.5)
    np.testing.assert_allclose(drive(cb, [0.5, 0.6], monitor="accuracy"), [0.1, 0.05])


@pytest.mark.parametrize("seed", range(20))
def test_reduce_lr_matches_keras(seed):
    rng = np.random.default_rng(seed)
    values = list(np.round(1.0 - 0.01 * np.cumsum(rng.normal(0.3, 1.0, 60)), 3))
    kwargs = {
        "factor": float(rng.choice([0.1, 0.5, 0.8])),
        "patience": int(rng.integers(0, 4)),
        "min_delta": float(rng.choice([0.0, 1e-4, 0.01])),
        "cooldown": int(rng.integers(0, 3)),
        "min_lr": float(rng.choice([0.0, 0.01])),
        "mode": str(rng.choice(["min", "max"])),
    }
    rates = drive(ReduceLROnPlateau(**kwargs), values)
    expected = keras_reduce_lr(values, 0.1, **kwargs)
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_reduce_lr_verbose_message(capsys):
    drive(ReduceLROnPlateau(patience=0, factor=0.5, verbose=1), [1.0, 1.0])
    assert capsys.readouterr().out == (
        "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n"
    )
    drive(ReduceLROnPlateau(patience=0, factor=0.5), [1.0, 1.0])
    assert capsys.readouterr().out == ""


def test_reduce_lr_missing_monitor_warns_once_and_does_nothing():
    model = fake_model()
    cb = ReduceLROnPlateau(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="monitor 'val_loss' is not in the logs") as w:
        drive(cb, [1.0, 1.0, 1.0], monitor="loss_typo", model=model)
    assert len(w) == 1
    assert "loss_typo" in str(w[0].message)
    assert model.optimizer.learning_rate_scale == 1.0
    assert cb.wait == 0
    # a new training warns again
    with pytest.warns(UserWarning) as w:
        drive(cb, [1.0, 1.0], monitor="loss_typo", model=model)
    assert len(w) == 1


def test_reduce_lr_needs_learning_rate_scale():
    cb = ReduceLROnPlateau()
    cb.set_model(SimpleNamespace(optimizer=SimpleNamespace(learning_rate=0.1)))
    with pytest.raises(TypeError, match="learning_rate_scale"):
        cb.on_train_begin({})


def test_reduce_lr_train_begin_resets():
    cb = ReduceLROnPlateau(patience=5)
    drive(cb, [1.0, 2.0, 2.0])
    assert (cb.wait, cb.best) == (2, 1.0)
    cb.on_train_begin({})
    assert cb.get_state() == {"wait": 0, "cooldown_counter": 0, "best": None}


def test_reduce_lr_state_round_trip():
    values = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.91, 0.99, 0.99, 0.99, 0.99]
    kwargs = {"patience": 2, "factor": 0.5, "cooldown": 2}
    whole = drive(ReduceLROnPlateau(**kwargs), values)

    # the first 5 epochs, a checkpoint (state as JSON, and the scale), the rest
    model = fake_model()
    first = ReduceLROnPlateau(**kwargs)
    head = drive(first, values[:5], model=model)
    state = first.get_state()
    assert state == {"wait": 0, "cooldown_counter": 1, "best": 0.9}
    state = json.loads(json.dumps(state, allow_nan=False))
    scale = model.optimizer.learning_rate_scale

    resumed = fake_model()
    resumed.optimizer.learning_rate_scale = scale
    second = ReduceLROnPlateau(**kwargs)
    second.set_state(state)
    assert second.get_state() == state
    # set_state before fit survives on_train_begin (once)
    tail = drive(second, values[5:], model=resumed)
    assert head + tail == pytest.approx(whole)

    # without the state, the resumed run would differ
    fresh = fake_model()
    fresh.optimizer.learning_rate_scale = scale
    assert head + drive(ReduceLROnPlateau(**kwargs), values[5:], model=fresh) != (
        pytest.approx(whole)
    )


def test_reduce_lr_state_of_a_fresh_callback():
    for monitor in ("val_loss", "val_accuracy"):
        cb = ReduceLROnPlateau(monitor=monitor)
        state = cb.get_state()
        assert state == {"wait": 0, "cooldown_counter": 0, "best": None}
        json.dumps(state, allow_nan=False)
        cb.set_state(state)
        assert cb.best == (math.inf if cb.mode == "min" else -math.inf)


@pytest.mark.parametrize(
    "state,message",
    [
        ([], "^state: expected a dict"),
        ({"wait": 0, "best": None}, "^state: expected a dict with keys"),
        ({"wait": -1, "cooldown_counter": 0, "best": None}, r"^state\['wait'\]"),
        ({"wait": 0, "cooldown_counter": 1.5, "best": 1.0}, r"^state\['cooldown_"),
        ({"wait": True, "cooldown_counter": 0, "best": 1.0}, r"^state\['wait'\]"),
        ({"wait": 0, "cooldown_counter": 0, "best": "x"}, r"^state\['best'\]"),
        ({"wait": 0, "cooldown_counter": 0, "best": math.nan}, r"^state\['best'\]"),
    ],
)
def test_reduce_lr_set_state_refuses_malformed(state, message):
    cb = ReduceLROnPlateau()
    with pytest.raises(ValueError, match=message):
        cb.set_state(state)
    assert cb.get_state() == {"wait": 0, "cooldown_counter": 0, "best": None}


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"factor": 1.0}, ValueError, r"^factor: expected a finite number > 0 and < 1"),
        ({"factor": 1.5}, ValueError, "^factor: .*received 1.5"),
        ({"factor": 0}, ValueError, "^factor: "),
        ({"factor": "0.5"}, TypeError, "^factor: expected a number"),
        ({"patience": -1}, ValueError, "^patience: expected an int >= 0"),
        ({"patience": 1.5}, TypeError, "^patience: expected an int >= 0"),
        ({"cooldown": -2}, ValueError, "^cooldown: expected an int >= 0; received -2"),
        ({"cooldown": None}, TypeError, "^cooldown: "),
        ({"min_lr": -1e-3}, ValueError, "^min_lr: expected a finite number >= 0"),
        ({"min_lr": math.inf}, ValueError, "^min_lr: "),
        ({"min_delta": -0.1}, ValueError, "^min_delta: "),
        ({"mode": "up"}, ValueError, "^mode: expected 'auto', 'min' or 'max'"),
        ({"verbose": -1}, ValueError, "^verbose: "),
        ({"monitor": 3}, TypeError, "^monitor: expected a str"),
    ],
)
def test_reduce_lr_refuses_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ReduceLROnPlateau(**kwargs)


def test_reduce_lr_no_warning_when_monitor_present():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drive(ReduceLROnPlateau(patience=1), [1.0, 1.0, 1.0])


def test_reduce_lr_needs_the_rate_in_the_logs_when_it_reduces():
    cb = ReduceLROnPlateau(patience=0)
    cb.set_model(fake_model())
    cb.on_train_begin({})
    cb.on_epoch_end(0, {"val_loss": 1.0})  # an improvement needs no rate
    with pytest.raises(KeyError, match="learning_rate"):
        cb.on_epoch_end(1, {"val_loss": 1.0})
