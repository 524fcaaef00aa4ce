"""transformers-format models as FEED teachers and students: their maps, preprocessing, sources."""
