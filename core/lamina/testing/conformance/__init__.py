"""Conformance kits: test classes a provider package subclasses to check itself against the APIs.

Each kit drives a real ``lamina run`` process with the official clients, so a provider passes only
if it works end to end on the wire. One kit per provider API: inference, safety, vector_io, files,
tool_runtime and scoring. See PLUGIN_GUIDE.md ("Test it") for each kit's settings and what it demands.
"""

from lamina.testing.conformance.files import FilesConformance
from lamina.testing.conformance.inference import InferenceConformance
from lamina.testing.conformance.safety import SafetyConformance
from lamina.testing.conformance.scoring import ScoringConformance
from lamina.testing.conformance.tool_runtime import ToolRuntimeConformance
from lamina.testing.conformance.vector_io import VectorIOConformance

__all__ = [
    "FilesConformance",
    "InferenceConformance",
    "SafetyConformance",
    "ScoringConformance",
    "ToolRuntimeConformance",
    "VectorIOConformance",
]
