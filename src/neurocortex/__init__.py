"""neurocortex: a Cortex-compatible observable-analysis and active-response engine."""

__version__ = "0.1.0"

# The version reported to clients as `versions.Cortex`. TheHive 5.5+ requires Cortex >= 3.1.6;
# we implement the 4.1 API surface.
CORTEX_API_VERSION = "4.1.0-1"
