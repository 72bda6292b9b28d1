"""The main job's report: header, glossary, one section per stage.

Every stage result may carry, besides `markdown` and `figures`:
  summary          one paragraph: what ran, at what size
  reconstructions  [(part, reason)]: parts implemented from a reconstruction
                   of the paper, not verified against the authors' code
  caveats          [text]: where the data are too small for a conclusion
"""

from __future__ import annotations

import os

from eval.stages.glossary import GLOSSARY
from jaxcxai.metric_writers import write_text_atomic


def _stage_times(results: dict) -> list[str]:
    rows = ["| stage | time |", "|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r.get('seconds', 0) / 60:.1f} min |")
    return rows


def header(config, results: dict, total_seconds: float) -> list[str]:
    env = results.get("environment", {}).get("info", {})
    this_run = sum(r.get("seconds", 0) for r in results.values())
    lines = [
        "# jaxcxai main job report",
        "",
        f"- **Variant**: `{config.get('variant', '?')}`; stages: "
        + ", ".join(config.stages) + ".",
        "- **Devices**: "
        + (f"{env.get('device_count')} x {env.get('device_kind')} "
           f"({env.get('platform')}), {env.get('process_count')} process(es)"
           if env else "not recorded")
        + ".",
        "- **Software**: "
        + (", ".join(f"{k} {env[k]}" for k in ("python", "jax", "flax", "optax")
                     if k in env) or "not recorded")
        + ".",
        f"- **Time**: {this_run / 60:.1f} min over all stages (this invocation: "
        f"{total_seconds / 60:.1f} min; stages finished by earlier runs keep "
        "their own times).",
        "- **Data**: SynthAerial, generated on the fly from fixed seeds (no "
        "download); each stage below states its sizes and seeds.",
        "",
    ]  # fmt: skip
    return lines + _stage_times(results) + [""]


def write_report(config, results: dict, workdir: str, total_seconds: float) -> str:
    """Writes `workdir/report.md` (atomically); returns its path."""
    lines = header(config, results, total_seconds)
    lines += ["## Terms", ""]
    lines += [f"- **{term}**: {meaning}." for term, meaning in GLOSSARY]
    lines.append("")
    for name, r in results.items():
        lines += [f"## {name}", ""]
        if r.get("summary"):
            lines += [f"_What ran_: {r['summary']}", ""]
        lines += [r.get("markdown", "").rstrip(), ""]
        recon = r.get("reconstructions") or []
        if recon:
            lines += [
                "**Reconstructions** (not verified against the authors' code):",
                "",
            ]
            lines += [f"- {part}: {why}" for part, why in recon] + [""]
        caveats = r.get("caveats") or []
        if caveats:
            lines += ["**Caveats**:", ""] + [f"- {c}" for c in caveats] + [""]
        for fig in r.get("figures", []):
            lines += [f"![{name}: {fig}]({os.path.join(name, fig)})", ""]
        lines += [f"_Stage time: {r.get('seconds', 0) / 60:.1f} min._", ""]
    path = os.path.join(workdir, "report.md")
    write_text_atomic(path, "\n".join(lines))
    return path
