"""A partition's offsets as the restriction of the splittable read: what the runner may split,
checkpoint and resume. A bounded read's restriction ends at the planned end offset; a
streaming read's has no real end (``UNBOUNDED_END``), so it is only ever deferred."""

from __future__ import annotations

import sys

from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider

from inference_enrich.transforms.kafka.partitions import PartitionRange

UNBOUNDED_END = sys.maxsize


class PartitionRestrictions(RestrictionProvider):
    """Offset ranges of ``PartitionRange`` elements, tracked and sized by offset."""

    def initial_restriction(self, part: PartitionRange) -> OffsetRange:
        return OffsetRange(part.start, part.stop if part.stop is not None else UNBOUNDED_END)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, part: PartitionRange, restriction: OffsetRange) -> int:
        return restriction.size()
