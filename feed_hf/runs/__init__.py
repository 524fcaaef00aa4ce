"""The run workflows beside the library: training jobs for the CLI and recipes, the experiment grid and its
report, the offline demo, reconstruction analysis and evaluation of exports. The library core never imports them.
"""
