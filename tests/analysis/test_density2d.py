"""facevae.analysis.density2d and the flows2d CLI: energies, grid normaliser, KL estimate, flow density, fitting."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from facevae.analysis import density2d
from facevae import flows2d
from facevae.flows import PlanarFlows


def grid(points=300):
    axis = np.linspace(-density2d.GRID_EXTENT, density2d.GRID_EXTENT, points)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], 1), (axis[1] - axis[0]) ** 2


def translation(shift, b=20.0):
    """K = 1 planar flow with w = 0: y = z + u tanh(b) = z + shift (tanh(20) = 1 in float32)."""
    layer = PlanarFlows(1, 2, mode="global")
    layer.build((None, 2))
    layer.u.assign([shift])
    layer.w.assign([[0.0, 0.0]])
    layer.b.assign([b])
    return layer


@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_the_two_gaussian_mixture_is_normalised_so_grid_log_z_is_zero(sigma):
    assert density2d.log_normaliser(density2d.energy("two-gaussians", sigma)) == pytest.approx(0.0, abs=2e-3)


def test_energies_are_finite_symmetric_where_they_should_be_and_walled():
    points, _ = grid(50)
    for target in density2d.TARGETS:
        values = density2d.energy(target)(points).numpy()
        assert values.shape == (len(points),) and np.all(np.isfinite(values)), target
    u1 = density2d.energy("u1")
    np.testing.assert_allclose(u1(points).numpy(), u1(-points).numpy(), rtol=1e-5, atol=1e-5)
    for target in ("u2", "u3", "u4"):  # the box |z1| <= 4
        u = density2d.energy(target)
        assert float(u(np.array([[4.6, 0.0]]))[0]) > float(u(np.array([[3.9, 0.0]]))[0]) + 50
    with pytest.raises(ValueError, match="'u5'"):
        density2d.energy("u5")
    with pytest.raises(ValueError, match="sigma=0"):
        density2d.energy("two-gaussians", 0)


def test_kl_estimate_of_a_shifted_gaussian_matches_the_numerical_kl():
    layer = translation([1.5, 1.5])
    u = density2d.energy("two-gaussians")
    kl, stderr = density2d.kl_estimate(layer, u, density2d.log_normaliser(u), samples=50_000)
    points, area = grid(500)
    log_q = -0.5 * np.sum((points - 1.5) ** 2, 1) - math.log(2 * math.pi)
    log_p = -u(points.astype(np.float32)).numpy().astype(np.float64)
    expected = np.sum(np.exp(log_q) * (log_q - log_p)) * area
    assert abs(kl - expected) < 4 * stderr + 2e-3, (kl, expected, stderr)


def test_flow_density_integrates_to_one_and_agrees_with_the_forward_pass():
    layer = PlanarFlows(3, 2, mode="global")
    layer.build((None, 2))
    rng = np.random.default_rng(0)
    layer.u.assign(rng.normal(size=(3, 2)).astype(np.float32))
    layer.w.assign(rng.normal(size=(3, 2)).astype(np.float32) * 2)
    layer.b.assign(rng.normal(size=3).astype(np.float32))
    points, area = grid(300)
    density = np.exp(density2d.flow_log_density(layer, points.astype(np.float32)))
    assert np.sum(density) * area == pytest.approx(1.0, abs=0.01)
    z0 = tf.random.stateless_normal((200, 2), seed=(3, 0))
    zk, log_det = layer(z0)
    forward = (-0.5 * tf.reduce_sum(z0**2, 1) - math.log(2 * math.pi) - log_det).numpy()
    np.testing.assert_allclose(density2d.flow_log_density(layer, zk.numpy()), forward, atol=2e-3)


def test_flows_start_near_the_identity():
    layer = PlanarFlows(32, 2, mode="global")
    layer.build((None, 2))
    density2d._start_near_identity(layer, seed=0)
    z0 = tf.random.stateless_normal((500, 2), seed=(1, 0))
    zk, log_det = layer(z0)
    assert float(tf.reduce_max(tf.abs(zk - z0))) < 0.5 and float(tf.reduce_max(tf.abs(log_det))) < 0.5


def test_fit_reduces_the_loss_and_plots(tmp_path):
    result = density2d.fit_flows("two-gaussians", 2, steps=200, batch=128, kl_samples=2000, grid_points=100)
    early, late = np.mean(result.losses[:20]), np.mean(result.losses[-50:])
    assert late < early
    assert math.isfinite(result.kl) and result.final_loss == pytest.approx(np.mean(result.losses[-100:]))
    assert set(result.summary()) == {"target", "flows", "steps", "final_loss", "kl", "kl_stderr", "log_z"}
    path = density2d.plot_fit(result, str(tmp_path / "fig.png"), points=40, samples=200)
    assert (tmp_path / "fig.png").stat().st_size > 1000 and path.endswith("fig.png")
    with pytest.raises(ValueError, match="flows=0"):
        density2d.fit_flows("u1", 0)
    with pytest.raises(ValueError, match="anneal_fraction=1"):
        density2d.fit_flows("u1", 1, anneal_fraction=1)


def test_cli_writes_figures_and_the_table(tmp_path, capsys):
    stem = tmp_path / "results" / "table"
    code = flows2d.main(["--target", "ring", "u2", "--flows", "1", "--steps", "100", "--batch", "64",
                         "--kl-samples", "500", "--figures", str(tmp_path / "figs"), "--results", str(stem)])
    assert code == 0
    assert (tmp_path / "figs" / "ring-K1.png").exists() and (tmp_path / "figs" / "u2-K1.png").exists()
    rows = json.loads(stem.with_suffix(".json").read_text())["results"]
    assert [(r["target"], r["flows"]) for r in rows] == [("ring", 1), ("u2", 1)]
    assert "| ring | 1 | 100 |" in stem.with_suffix(".md").read_text()
    assert "KL(q||p)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        flows2d.main(["--flows", "0"])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_fifteen_flows_fit_the_two_gaussians_within_005_nats():
    result = density2d.fit_flows("two-gaussians", 15, steps=3000)
    assert result.kl <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("target", ["u1", "u2", "u3", "u4"])
def test_kl_falls_as_flows_are_added(target):
    kls = [density2d.fit_flows(target, k, steps=2000).kl for k in (2, 8, 32)]
    assert kls[0] > kls[1] > kls[2], kls
