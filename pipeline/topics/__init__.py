"""Emergent themes over a run: the topic stage, prevalence over time, drift and the HTML topic view.

The coder itself is :class:`pipeline.coders.topics.TopicCoder` (``coder.topics.v1``).
"""

from pipeline.topics.config import TopicsConfig

__all__ = ["TopicsConfig"]
