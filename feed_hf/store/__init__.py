"""The teacher store: each teacher's maps computed once, kept on disk, shared by ranks and runs.

One part, read in this order: `key.py` (what a store is for: the fingerprint of teachers, data and crops),
`files.py` (its folder: manifest, shards, names), `reader.py` (`TeacherStore`: open, verify, replay a batch),
then how it is made and kept sound: `build.py`, `integrity.py`, `limits.py`, `lock.py`, `codec.py` (compressed
maps), `tensor_records.py`; and `cache.py`, the in-memory cache of one run and the trainer's door to both.
"""
