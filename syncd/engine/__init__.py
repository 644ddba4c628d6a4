"""The planning engine: pure reconciliation of source records against the inventory.

No I/O, no clock it was not given, no globals. The store hands it candidates (one per
serial that may need work), the policy, the catalogue of type/organization ids and
the run's context; it returns a ``Plan``. See ``planner`` for the rules.
"""

from syncd.engine.gates import check_gates
from syncd.engine.mapping import UnmappedError
from syncd.engine.model import (
    OPERATION_KINDS,
    WRITE_KINDS,
    Candidate,
    Catalogue,
    FieldChange,
    MirrorEntry,
    Operation,
    OperationKind,
    OrgInfo,
    Ownership,
    Plan,
    PlanContext,
    SettleField,
    Tombstone,
    TypeInfo,
)
from syncd.engine.planner import is_settled, plan, settle_fields
from syncd.engine.policy import DEFAULT_FIELDS, FieldPolicy, Policy, SerialRules
from syncd.engine.serials import EmptySerialError, group_by_serial, normalize_serial
from syncd.engine.values import InvalidValueError, canonical_ip, canonical_mac
from syncd.records import API_FIELD, DETAIL_ONLY

__all__ = [
    "API_FIELD",
    "DEFAULT_FIELDS",
    "DETAIL_ONLY",
    "OPERATION_KINDS",
    "WRITE_KINDS",
    "Candidate",
    "Catalogue",
    "EmptySerialError",
    "FieldChange",
    "FieldPolicy",
    "InvalidValueError",
    "MirrorEntry",
    "Operation",
    "OperationKind",
    "OrgInfo",
    "Ownership",
    "Plan",
    "PlanContext",
    "Policy",
    "SerialRules",
    "SettleField",
    "Tombstone",
    "TypeInfo",
    "UnmappedError",
    "canonical_ip",
    "canonical_mac",
    "check_gates",
    "group_by_serial",
    "is_settled",
    "normalize_serial",
    "plan",
    "settle_fields",
]
