"""The one namespace every Beam metric of the job is counted under.

Each step counts its own counters (records read, enriched, written, dead letters), and the
job summary (``pipelines/enrich.py``) reads back every counter in this namespace; one module
holds it so that no step imports another step only for the name.
"""

from __future__ import annotations

METRICS_NAMESPACE = "inference_enrich"
