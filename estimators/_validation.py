"""The input checks live in ``problems._validation`` (the lowest layer, so
``problems`` needs nothing from ``estimators``); re-exported here for the
estimators' own modules."""

from problems._validation import *  # noqa: F401,F403
from problems._validation import __all__  # noqa: F401
