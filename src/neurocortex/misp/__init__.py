"""MISP on both sides: MISP calling neurocortex (/modules, /query) and neurocortex calling misp-modules."""
