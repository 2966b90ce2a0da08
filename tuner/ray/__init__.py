"""Every touch of Ray's API, one module a job.

Ray's API moves between releases; this project pins ``ray[tune]==2.60.*`` and keeps its calls
in this package, so that an upgrade of Ray changes these files alone:

- :mod:`~tuner.ray.cluster`: starting or joining a cluster, and leaving it;
- :mod:`~tuner.ray.settings`: Ray's settings for a tuner run (environment variables);
- :mod:`~tuner.ray.auth`: token authentication, always on;
- :mod:`~tuner.ray.nodes`: a cluster's live nodes, its autoscaler's node types, whether a trial fits;
- :mod:`~tuner.ray.search`: search domains and searchers on the parameters' latent scales;
- :mod:`~tuner.ray.outcome`: how an experiment ended (Ctrl-C, or its first trials failing alike);
- :mod:`~tuner.ray.asha`: ASHA, with its rung records saved for ``tuner resume``;
- :mod:`~tuner.ray.callbacks`: progress, the end of an experiment, TensorBoard, MLflow, Optuna;
- :mod:`~tuner.ray.batching`: trials send their results in batches;
- :mod:`~tuner.ray.worker`: the trial (a :class:`tuner.Run` on Ray) and plain tasks;
- :mod:`~tuner.ray.experiment`: running and resuming a sweep's trials (every round) as one experiment;
- :mod:`~tuner.ray.tune_patches`: Ray Tune's internals replaced for the length of an experiment;
- :mod:`~tuner.ray.deferred`: pandas, Ray Data, ``requests`` and ``jsonschema``, which Ray and
  Ray Tune import, loaded on first use;
- :mod:`~tuner.ray.entry`: the first code of an own instance's worker, the hook before Ray's worker.

Nothing here runs at import but :mod:`~tuner.ray.deferred`'s hook (:mod:`~tuner.ray.entry` runs
only as a script): Ray's settings are applied when :func:`tuner.ray.cluster.connect` starts or
joins a cluster.
"""
