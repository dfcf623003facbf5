import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from grokjax.problems import models
from grokjax.problems.models import Transformer, layer_norm, weight_mask

P, D, HEADS, WIDTH = 11, 16, 4, 32
SHAPES = {"embed": (P + 1, D), "pos": (3, D), "wq": (D, D), "wk": (D, D), "wv": (D, D),
          "wo": (D, D), "w_in": (D, WIDTH), "w_out": (WIDTH, D), "unembed": (D, P + 1)}
# The matrices whose outputs are added to the residual stream: with LayerNorm, scaling
# them together by c > 0 scales the whole stream by c (see the invariance test).
RESIDUAL = ("embed", "pos", "wo", "w_out")


def _model(layernorm, factorised=True, seed=0):
  return Transformer(P, D, HEADS, WIDTH, layernorm=layernorm, factorised=factorised,
                     rngs=nnx.Rngs(seed))


def _params(model):
  return nnx.to_pure_dict(nnx.split(model)[1])


def _pairs():
  a, b = jnp.meshgrid(jnp.arange(P), jnp.arange(P))
  return a.ravel(), b.ravel()


@jax.jit
def _apply(model, a, b):
  """model(a, b) as one compiled program (cheaper than compiling its ops one by one)."""
  return model(a, b)


def _scaled(model, c, names):
  for name in names:
    getattr(model, name)[...] = c * getattr(model, name)[...]
  return model


@functools.partial(jax.jit, static_argnums=3)  # one compile instead of dozens of eager ops
def _reference(params, a, b, layernorm):
  """The authors' forward pass written out directly, one head at a time: the query of the
  "=" position only, attending to all three positions; residual adds; an exact GELU; the
  logits over p + 1 classes read from the "=" position."""
  ln = layer_norm if layernorm else (lambda v: v)
  e = D // HEADS
  tokens = jnp.stack([a, b, jnp.full_like(a, P)], axis=-1)  # [n, 3]
  x = params["embed"][tokens] + params["pos"]  # [n, 3, d]
  h = ln(x)
  heads = []
  for k in range(HEADS):
    cols = slice(k * e, (k + 1) * e)
    q = h[:, 2] @ params["wq"][:, cols]  # [n, e]
    kk, v = (h @ params[w][:, cols] for w in ("wk", "wv"))  # [n, 3, e]
    s = jnp.einsum("ne,nte->nt", q, kk) / math.sqrt(e)
    heads.append(jnp.einsum("nt,nte->ne", jax.nn.softmax(s, axis=-1), v))
  x = x[:, 2] + jnp.concatenate(heads, axis=-1) @ params["wo"]
  x = x + jax.nn.gelu(ln(x) @ params["w_in"], approximate=False) @ params["w_out"]
  return ln(x) @ params["unembed"]


def test_shapes_and_matrices():
  model = _model(False)
  a, b = _pairs()
  n = a.shape[0]
  # p + 1 classes: the "=" token is a class of the softmax (the authors' unembedding)
  assert _apply(model, a, b).shape == (n, P + 1)
  assert _apply(model, jnp.stack([a, b]), jnp.stack([b, a])).shape == (2, n, P + 1)
  params = _params(model)
  assert {k: v.shape for k, v in params.items()} == SHAPES
  assert all(v.dtype == jnp.float32 for v in params.values())
  mask = weight_mask(params)
  assert {k for k, v in mask.items() if v} == set(SHAPES)  # no biases: every leaf counts


def test_init_scale_is_one_over_sqrt_fan_in():
  """Every matrix is N(0, 1) / sqrt(fan_in), the token embedding N(0, 1) / sqrt(d), the
  positional embedding N(0, 1) x 0.1 / sqrt(d) (the authors' init), float32."""
  params = _params(_model(False, seed=3))
  pooled = []
  for name, x in params.items():
    scale = {"w_out": 1 / math.sqrt(WIDTH), "pos": 0.1 / math.sqrt(D)}.get(name, 1 / math.sqrt(D))
    z = np.asarray(x) / scale  # should be N(0, 1)
    # four standard errors of the sample std and mean of z.size normal draws
    assert abs(z.std() - 1) < 4 / math.sqrt(2 * z.size), name
    assert abs(z.mean()) < 4 / math.sqrt(z.size), name
    pooled.append(z.ravel())
  assert abs(np.concatenate(pooled).std() - 1) < 0.06


@pytest.mark.parametrize("layernorm", [False, True])
def test_matches_direct_reference(layernorm):
  """Both attention paths (factorised and plain) equal the reference on all p^2 pairs."""
  a, b = _pairs()
  for factorised in (True, False):
    model = _model(layernorm, factorised, seed=1)
    np.testing.assert_allclose(_apply(model, a, b), _reference(_params(model), a, b, layernorm),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("factorised", [True, False])
@pytest.mark.parametrize("c", [0.5, 3.0])
def test_layernorm_scale_invariance(c, factorised, monkeypatch):
  """Claim (layernorm=True, any c > 0): multiplying embed, pos, wo and w_out by c leaves
  the logits unchanged, exactly when the LayerNorm's eps is 0.

  Why: the stream x0 = embed[tokens] + pos becomes c x0; LN(c x0) = LN(x0), so queries,
  keys, values, the attention pattern and the head outputs are unchanged and the write
  through wo is c times the old one, so x1 = c x1_old; likewise the MLP sees LN(x1) =
  LN(x1_old) and writes through w_out, so x2 = c x2_old and LN(x2) @ unembed is unchanged.
  Scaling wq, wk, wv or w_in instead is not a symmetry (wq and wk scale the attention
  scores by their product, w_in moves the GELU's operating point), nor is the same rescale
  without LayerNorm (the scores go as c^2 there). With the real eps = 1e-5 the identity
  holds to a relative error of order eps / (c^2 Var x), here below 1e-3 of the logit scale.
  Separately, the logits are linear in unembed: multiplying it by c multiplies them by c.
  """
  a, b = _pairs()
  logits = lambda ln, names=(), by=c: _apply(_scaled(_model(ln, factorised), by, names), a, b)
  base = logits(True)
  scale = float(jnp.abs(base).max())
  # with the model's eps: close, at the eps-limited accuracy
  np.testing.assert_allclose(logits(True, RESIDUAL), base, rtol=0, atol=1e-3 * scale)
  # without LayerNorm the same rescale is visible, so the check above can fail
  plain = logits(False)
  moved = logits(False, RESIDUAL)
  assert float(jnp.abs(moved - plain).max()) > 0.1 * float(jnp.abs(plain).max())
  # nor are the query/key/MLP-input matrices part of the symmetry
  assert float(jnp.abs(logits(True, ("wq", "wk", "w_in")) - base).max()) > 0.05 * scale
  # the unembedding alone sets the logits' scale
  np.testing.assert_allclose(logits(True, ["unembed"]), c * base, rtol=1e-5, atol=1e-5 * scale)
  # with eps = 0 the invariance is exact up to float32 rounding; a fresh jit, because
  # `_apply`'s cached trace has the real eps baked in
  monkeypatch.setattr(models, "layer_norm", functools.partial(layer_norm, eps=0.0))
  apply = jax.jit(lambda model: model(a, b))
  exact = apply(_model(True, factorised))
  np.testing.assert_allclose(apply(_scaled(_model(True, factorised), c, RESIDUAL)), exact,
                             rtol=1e-4, atol=1e-5 * scale)
  assert float(jnp.abs(exact - base).max()) > 0  # the patch took effect


def test_trains():
  """Full-batch AdamW(1e-2) on all p^2 pairs of (a + b) mod p more than halves the loss.

  The LayerNorm variant, the slower of the two to fit. 100 steps, not 30: at p = 11,
  d = 16 the loss falls by only a quarter to a half in the first 30 steps and collapses
  between steps 40 and 100 depending on the seed.
  """
  graphdef, state = nnx.split(_model(True))
  params = nnx.to_pure_dict(state)
  a, b = _pairs()
  y = (a + b) % P

  def loss(params):
    logits = nnx.merge(graphdef, params)(a, b)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  opt = optax.adamw(1e-2)

  @jax.jit
  def train(params):
    def step(_, carry):
      params, opt_state = carry
      updates, opt_state = opt.update(jax.grad(loss)(params), opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    return jax.lax.fori_loop(0, 100, step, (params, opt.init(params)))[0]

  first = float(loss(params))
  assert float(loss(train(params))) < first / 2
