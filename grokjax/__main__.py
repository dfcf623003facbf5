"""grokjax's experiments from the command line: `grokjax EXPERIMENT [flags]` (installed as a
console script) or `python -m grokjax EXPERIMENT [flags]`, the same as
`python experiments/EXPERIMENT.py [flags]` from a clone.

    grokjax pinned_norm --moduli 97,113 --dry-run    # the plan, nothing trained
    grokjax pinned_norm --moduli 41,47 --preset quick
    grokjax reproduce --only dense_rho --report-only
    grokjax free_training --help                     # every experiment's flags
"""

from __future__ import annotations

import re
import sys

from grokjax import cli, registry

REPRODUCE_DOC = "The paper, reproduced: every claim at the paper preset, then one table."


def usage() -> str:
  lines = [__doc__.strip(), "", "experiments:"]
  for name in registry.names() + ("reproduce",):
    doc = registry.get(name).doc if name != "reproduce" else REPRODUCE_DOC
    first = re.split(r"(?<=\.)\s", " ".join((doc or "").split()))[0].rstrip(".")
    lines.append(f"  {name:<20} {first if len(first) <= 90 else first[:87] + '...'}")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else 2
  name, rest = argv[0], argv[1:]
  if name == "reproduce":
    return cli.reproduce_main(rest, doc=usage())
  if name not in registry.names():
    print(f"grokjax: error: unknown experiment {name!r}; choose from "
          f"{', '.join(registry.names() + ('reproduce',))}", file=sys.stderr)
    return 2
  return cli.main(name, argv=rest)


if __name__ == "__main__":
  sys.exit(main())
