"""From the ``[policy]`` section of the config to the engine's ``Policy``."""

from __future__ import annotations

from syncd.config import PolicySettings
from syncd.engine import DEFAULT_FIELDS, FieldPolicy, Policy, SerialRules
from syncd.errors import ConfigError, Problem


def build_policy(settings: PolicySettings) -> Policy:
    """The engine's policy. Fields the config does not mention keep their defaults
    (``status`` is left to the inventory unless configured)."""
    fields = dict(DEFAULT_FIELDS)
    try:
        for name, field in settings.fields.items():
            fields[name] = FieldPolicy(
                mode=field.mode,
                sources=tuple(field.sources),
                on_manual_edit=field.on_manual_edit,
            )
        return Policy(
            fields=fields,
            source_priority=tuple(settings.source_priority),
            serial=SerialRules(
                strip=settings.serial.strip,
                case=settings.serial.case,
                strip_prefixes=tuple(settings.serial.strip_prefixes),
                remove_chars=settings.serial.remove_chars,
            ),
            adopt=settings.adopt,
            delete_orphans=settings.delete_orphans,
            orphan_grace_runs=settings.orphan_grace_runs,
            orphan_grace_seconds=settings.orphan_grace_hours * 3600.0,
            max_delete_share=settings.max_delete_share,
            max_delete_count_without_gate=settings.max_delete_count_without_gate,
            min_source_ratio=settings.min_source_ratio,
            type_map=dict(settings.type_map),
            organization_map=dict(settings.organization_map),
        )
    except ValueError as exc:
        raise ConfigError([Problem("policy", str(exc))], source="policy") from None
