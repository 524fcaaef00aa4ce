"""The teacher store: teacher maps computed once, kept on disk, shared by ranks and runs (key, files, reader)."""
