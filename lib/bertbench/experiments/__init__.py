"""The engine of each notebook, named after it: ``notebooks/NN_<name>.py`` runs ``bertbench.experiments.<name>``.

Everything here builds on the shared machinery one level up (config, data readers, encoding, models and heads,
the loop, checkpoints, metrics, results); nothing in the shared machinery imports an experiment.
"""
