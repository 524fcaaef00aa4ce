"""Teachers: where a teacher comes from (folder, Hub, timm name, transformers), loaded frozen, licences, memory."""
