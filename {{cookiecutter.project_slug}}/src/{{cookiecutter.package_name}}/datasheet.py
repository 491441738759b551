"""A datasheet in the sections of Gebru et al., "Datasheets for Datasets" (2021). Adapt freely.

Filled from what the project knows (parameters, charter) and what step 03
computed; questions nobody has answered yet are marked as unknown, so the gap
is visible instead of papered over.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .profiling import screen_summary

UNKNOWN = "_Unknown: to be completed by the data owner._"


def _or_unknown(value: Any) -> str:
    return str(value).strip() if value not in (None, "", []) else UNKNOWN


def datasheet_markdown(
    facts: dict[str, Any], prof: pd.DataFrame, spec: dict[str, Any], screen: pd.DataFrame | None = None
) -> str:
    """Render the datasheet; ``facts`` holds the known context, ``prof`` the column profile and
    ``screen`` the models of the leakage screen's look at the columns together (:func:`.profiling.combined_screen`)."""
    excluded = spec["excluded_columns"]
    excluded_lines = "\n".join(f"- `{c}`: {why}" for c, why in excluded.items()) or "- none"
    missing = prof[prof["missing_rate"] > 0].sort_values("missing_rate", ascending=False)
    missing_lines = "\n".join(f"- `{r.column}`: {r.missing_rate:.1%} missing" for r in missing.itertuples()) or "- none"
    sensitive = ", ".join(f"`{f}`" for f in spec["sensitive_features"])
    together = screen_summary(screen) if screen is not None else "- not run"
    return f"""# Datasheet: `{facts["path"]}`

Sections follow Gebru et al., *Datasheets for Datasets* (Communications of the ACM, 2021).

## Motivation
- **For what purpose was the dataset created?** {_or_unknown(facts.get("source"))}
- **Purpose in this project:** {facts["problem"]}
- **Who funded its creation?** {UNKNOWN}

## Composition
- **What do the instances represent?** One row per record of `{facts["path"]}`: {facts["rows"]:,} rows, {facts["columns"]} columns.
- **Label:** `{spec["target"]}`, positive value `{spec["positive_label"]}` ({facts["prevalence"]:.1%} of labelled rows).
- **Rows without a label:** {facts["unlabelled_rows"]:,} (not used).
- **Duplicated rows:** {facts["duplicate_rows"]:,} ({facts["duplicate_rows"] / max(facts["rows"], 1):.1%}); handled in step 05.
- **Missing values:**
{missing_lines}
- **Sensitive attributes:** {sensitive}; assessed in steps 04 and 08 and kept out of the model's features.
- **Is it a sample of a larger set?** {_or_unknown(facts.get("sampling"))}

## Collection process
- **How was the data acquired?** {_or_unknown(facts.get("source"))}
- **Over what time frame?** {UNKNOWN}
- **Were individuals notified or did they consent?** {UNKNOWN}

## Preprocessing, cleaning, labelling
- **Columns kept as features:** {len(spec["numeric_features"])} numeric, {len(spec["categorical_features"])} categorical.
- **Columns excluded and why:**
{excluded_lines}
- **The candidate features together** (a quick model, out of fold: leaks that pass one column at a time make it too good to be true):
{together}
- **Is the raw data kept?** Yes: `{facts["path"]}`, versioned by DVC.

## Uses
- **Intended use:** {facts["decision"]} (see the project charter).
- **Uses to avoid:** decisions about individuals outside this purpose; any use without the fairness review of step 08.

## Distribution
- **License:** {_or_unknown(facts.get("license"))}

## Maintenance
- **New data:** production batches dropped into `{facts["production_dir"]}` are monitored in step 09 and feed retraining in step 10.
- **Who maintains it?** {UNKNOWN}
"""
