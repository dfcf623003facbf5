"""The claims of the paper that grokjax reproduces: each claim's results folders (`Part`),
the experiment and paper-preset flags that make each, and whether a folder already holds them.
"""

from __future__ import annotations

import dataclasses
import os

from grokjax.harness import io
from grokjax.experiments import registry
from grokjax.harness.config import as_written

DENSE_RHOS = [round(0.85 + 0.05 * i, 2) for i in range(10)]  # 0.85 ... 1.30


FRACS = [0.30, 0.35, 0.40, 0.50, 0.65]


# The attention model's two studies (SPEC.md): without LayerNorm at p = 59, lr 5e-4 (the
# transformer preset's budgets), with LayerNorm at p = 71, lr 1e-3 (budgets 3-4x the
# authors' medians of about 1,900-3,700; the preset scales them by p / 59).
TF_NO_LN = dict(moduli=[59], lrs=[5e-4])


TF_LN = dict(moduli=[71], lrs=[1e-3], layernorm=True, rhos=[0.85, 1.00, 1.15, 1.30],
             budgets={"free": 6000, 0.85: 8000, 1.30: 12000})


@dataclasses.dataclass(frozen=True)
class Part:
  """One results folder: an experiment at the paper preset with some flags set."""
  folder: str
  experiment: str
  overrides: dict
  accelerator_only: bool = False

  @property
  def stream(self) -> str:
    """Its seed stream: the claim's folder, so no two claims share runs."""
    return self.folder.split("/")[0]


CLAIMS: dict[str, tuple[str, list[Part]]] = {
    "dense_rho": ("dense rho at p = 59: alpha, R^2, saturation at 1.30, grok fractions", [
        Part("dense_rho", "pinned_norm", dict(moduli=[59], seeds=16, rhos=DENSE_RHOS,
                                              fit_rhos=[0.85, 1.25]))]),
    "moduli_scan": ("moduli scan p = 41, 53, 59, 71: W_c, alpha per p, shared alpha", [
        Part("moduli_scan", "pinned_norm", dict(moduli=[41, 53, 59, 71], seeds=12))]),
    "norm_vs_lr": ("rho x learning-rate matrix at p = 59 (Table 1)", [
        Part("norm_vs_lr", "norm_vs_lr", dict(seeds=12))]),
    "free_training": ("free training: W_c(p), seed CV, power law", [
        Part("free_training", "free_training", dict(seeds=16))]),
    "train_fraction": ("free training at p = 59: W_c against the train fraction", [
        Part(f"train_fraction/frac{f:.2f}", "free_training", dict(moduli=[59], seeds=12, frac=f))
        for f in FRACS]),
    "user_moduli": ("the user's moduli 97 and 113, against a locked prediction", [
        Part("user_moduli", "pinned_norm", dict(moduli=[97, 113]))]),
    "wc_wd_lr": ("W_c across weight decay x learning rate at p = 59, train fraction 0.50", [
        Part("wc_wd_lr", "free_training",
             dict(moduli=[59], seeds=12, frac=0.50, lrs=[3e-4, 1e-3, 3e-3], wds=[0.3, 1.0, 3.0],
                  budgets={"free": 60000}))]),
    "interventions": ("one-shot rescales and kicks wash out, a sustained hold does not", [
        Part("norm_interventions", "norm_interventions", {})]),
    "free_norm_delay": ("the logarithmic delay of a freely contracting norm (kappa)", [
        Part("free_norm_delay", "free_norm_delay", {})]),
    "transformer_layernorm": ("attention model with and without LayerNorm (alpha_2)", [
        Part(f"transformer_layernorm/{name}", "pinned_norm", dict(overrides, arch="transformer"),
             accelerator_only=name.startswith("paper_")) for name, overrides in {
            # what a 2-core CPU affords: 8 seeds; budgets 2-3x the authors' times
            "no_layernorm": dict(TF_NO_LN, seeds=8, rhos=[0.85, 0.925, 1.00, 1.05],
                                 budgets={"free": 12000, 0.85: 3000, 1.00: 16000, 1.05: 30000}),
            "layernorm": dict(TF_LN, seeds=8),
            "layernorm_output": dict(TF_LN, seeds=8, norm_group="output"),
            # the authors' grids (16 seeds, rho to 1.20; group clamps of the LayerNorm model)
            "paper_no_layernorm": dict(TF_NO_LN, seeds=16, rhos=[0.85, 1.00, 1.15, 1.20],
                                       budgets={"free": 40000, 0.85: 30000, 1.00: 40000,
                                                1.15: 120000, 1.20: 180000}),
            # (the authors' LayerNorm budget: 25k steps in every cell, here x 71 / 59)
            "paper_layernorm_output": dict(TF_LN, seeds=16, norm_group="output",
                                           budgets={"free": 25000}),
            "paper_layernorm_mlp": dict(TF_LN, seeds=16, norm_group="mlp", rhos=[0.85, 1.30],
                                        budgets={"free": 25000}),
            "paper_layernorm_embedding": dict(TF_LN, seeds=16, norm_group="embedding",
                                              rhos=[1.30], budgets={"free": 25000})}.items()]),
}


def part_config(part: Part, seeds: int | None = None):
  """The resolved paper-preset Config of a part (what its config.json must hold)."""
  overrides = dict(part.overrides)
  overrides.setdefault("seed_stream", part.stream)
  if seeds is not None:
    overrides["seeds"] = seeds
  return registry.resolve(part.experiment, "paper", **overrides)


def is_done(part: Part, results: str, seeds: int | None) -> bool:
  """The committed folder holds this part's runs under the same configuration."""
  path = os.path.join(results, part.folder)
  if not os.path.exists(os.path.join(path, "runs.csv")):
    return False
  old = as_written(io.read_json(os.path.join(path, "config.json")).get("config", {}))
  new = io.plain(part_config(part, seeds).to_json())
  return all(old.get(k) == v for k, v in new.items())

