"""projectcalico.org/v3 resource models with Calico's defaults and validation, and codecs.

Entry points: `validate(dict) -> Resource`, `load(text) -> list[Resource]`,
`Resource.to_dict()`, `ValidationError` (one line naming kind, name, field and value).
Importing this package registers every kind in `KINDS`.
"""

from . import kinds as _kinds  # noqa: F401  (registers every kind)
from .base import API_VERSION, KINDS, FieldError, Resource, ValidationError, resource_key, validate
from .codec import ManifestError, dump_json, dump_yaml, load, parse_documents

__all__ = [
    "API_VERSION", "KINDS", "FieldError", "ManifestError", "Resource", "ValidationError",
    "dump_json", "dump_yaml", "load", "parse_documents", "resource_key", "validate",
]
