import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from grokjax.problems.models import MLP, layer_norm, weight_mask, weight_norm


def _params(model):
  return nnx.to_pure_dict(nnx.split(model)[1])


def test_mlp_shapes_and_matrices():
  model = MLP(11, d=8, hidden=16, rngs=nnx.Rngs(0))
  a = jnp.arange(5)
  assert model(a, a).shape == (5, 11)
  mask = weight_mask(_params(model))
  assert {k for k, v in mask.items() if v} == {"embed", "w1", "w2"}
  assert {k for k, v in mask.items() if not v} == {"b1", "b2"}


def test_init_scale_matches_spec():
  p, d, h = 59, 128, 256
  params = _params(MLP(p, d, h, rngs=nnx.Rngs(1)))
  # N(0, 1) / sqrt(fan_in): squared norms p (E), H (W1), p (W2), biases zero
  assert abs(float(weight_norm(params)) - np.sqrt(p + h + p)) < 0.5
  assert float(jnp.abs(params["b1"]).max()) == 0.0


def test_factorised_first_layer_equals_concat_form():
  fast = MLP(13, d=8, hidden=16, rngs=nnx.Rngs(2))
  plain = MLP(13, d=8, hidden=16, factorised=False, rngs=nnx.Rngs(2))
  a, b = jnp.meshgrid(jnp.arange(13), jnp.arange(13))
  np.testing.assert_allclose(fast(a.ravel(), b.ravel()), plain(a.ravel(), b.ravel()),
                             rtol=1e-5, atol=1e-6)
  grad = lambda m: jax.grad(lambda pr: nnx.merge(nnx.split(m)[0], pr)(a.ravel(), b.ravel()).sum())(_params(m))
  for k in ("embed", "w1", "w2"):
    np.testing.assert_allclose(grad(fast)[k], grad(plain)[k], rtol=1e-4, atol=1e-5)


def test_layer_norm_is_scale_invariant_and_used_by_mlp():
  x = jax.random.normal(jax.random.key(0), (5, 16))
  np.testing.assert_allclose(layer_norm(7.5 * x), layer_norm(x), rtol=1e-4, atol=1e-5)
  with_ln = MLP(7, d=4, hidden=8, layernorm=True, rngs=nnx.Rngs(0))
  a = jnp.arange(7)
  E, w1 = with_ln.embed[...], with_ln.w1[...]
  h = jax.nn.gelu(jnp.concatenate([E[a], E[a]], -1) @ w1 + with_ln.b1[...], approximate=False)
  expect = layer_norm(h) @ with_ln.w2[...].T + with_ln.b2[...]
  np.testing.assert_allclose(with_ln(a, a), expect, rtol=1e-5, atol=1e-5)


def test_gelu_is_the_exact_erf_gelu_with_its_derivative():
  from grokjax.problems.models import gelu
  x = jnp.linspace(-6, 6, 1001)
  np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-6)
  ours = jax.vmap(jax.grad(gelu))(x)
  ref = jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x)
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
  assert np.abs(np.asarray(gelu(x)) - np.asarray(jax.nn.gelu(x, approximate=True))).max() > 1e-4


def test_output_product_pads_rows_without_changing_values_or_gradients():
  from grokjax.problems.models import output_product
  h = jax.random.normal(jax.random.key(3), (37, 24))
  for rows in (59, 64, 2):  # padded to 64, already a multiple, padded to 16
    w = jax.random.normal(jax.random.key(rows), (rows, 24))
    np.testing.assert_allclose(output_product(h, w), h @ w.T, rtol=1e-5, atol=1e-5)
    assert output_product(h, w).shape == (37, rows)
    loss = lambda f: lambda h, w: jnp.sum(jnp.sin(f(h, w)))
    fast = jax.grad(loss(output_product), argnums=(0, 1))(h, w)
    plain = jax.grad(loss(lambda h, w: h @ w.T), argnums=(0, 1))(h, w)
    for f, pl in zip(fast, plain):
      assert f.shape == pl.shape
      np.testing.assert_allclose(f, pl, rtol=1e-4, atol=1e-5)


def test_mlp_output_layer_is_stored_out_by_in():
  model = MLP(11, d=8, hidden=16, rngs=nnx.Rngs(0))
  assert model.w2[...].shape == (11, 16) and model.b2[...].shape == (11,)
