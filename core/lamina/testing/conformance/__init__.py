"""Conformance kits: test classes a provider package subclasses to check itself against the APIs.

Each kit drives a real ``lamina run`` process with the official clients, so a provider passes only
if it works end to end on the wire. See PLUGIN_GUIDE.md.
"""

from lamina.testing.conformance.inference import InferenceConformance
from lamina.testing.conformance.safety import SafetyConformance
from lamina.testing.conformance.vector_io import VectorIOConformance

__all__ = ["InferenceConformance", "SafetyConformance", "VectorIOConformance"]
