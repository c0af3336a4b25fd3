"""Streaming a stage's data from webdataset-style shards (image-caption sets too big for one
JSON file): ``convert`` writes them, ``stream`` reads them with shuffling, rank/worker
sharding and a resumable position, ``format`` is the ``shards`` data format over them.

Nothing is imported here: ``convert`` and ``stream`` need the ``streaming`` extra, and the
format is registered without it.
"""
