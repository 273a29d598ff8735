"""The ``local`` distribution: what ``lamina run`` serves with no argument."""
