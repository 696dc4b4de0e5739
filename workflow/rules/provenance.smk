# Provenance beside the outputs: the resolved workflow config, every run config is in its run
# folder, and the versions of the packages that produced the numbers. This rule runs where
# Snakemake runs (on SLURM, the head node); each training job records its own host, GPU and
# timings in RUN/environment.json (methods/training/provenance.py).


rule provenance:
    # lint accepted: "No log directive defined" the job prints nothing; an exception in it reaches the
    # terminal with Snakemake's report of the failed job
    # lint accepted: "Migrate long run directives into scripts or notebooks" a `script:` would change
    # the rule's code, which reruns it and, through its outputs, every analysis already finished
    output:
        config=f"{R}/provenance/config.yaml",
        versions=f"{R}/provenance/versions.txt",
    params:
        cfg=lambda wc: config,
    run:
        import platform
        import sys
        from importlib import metadata

        from methods.atomic import write_text_atomic

        write_text_atomic(output.config, _yaml.safe_dump(dict(params.cfg), sort_keys=False))
        names = ["spcl-bench", "torch", "torchvision", "segmentation-models-pytorch", "timm", "numpy",
                 "scipy", "pandas", "nibabel", "pydicom", "scikit-image", "medpy", "matplotlib",
                 "seaborn", "openTSNE", "scikit-posthocs", "snakemake"]
        lines = [f"python {sys.version.split()[0]} ({platform.platform()})"]
        for n in names:
            try:
                lines.append(f"{n} {metadata.version(n)}")
            except metadata.PackageNotFoundError:
                lines.append(f"{n} (not installed)")
        try:
            import torch

            lines.append(f"cuda available on the machine running snakemake: {torch.cuda.is_available()}"
                         + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
                         + "; the device each training job used is in its run folder's environment.json")
        except Exception as exc:  # noqa: BLE001
            lines.append(f"torch import failed: {exc}")
        write_text_atomic(output.versions, "\n".join(lines) + "\n")
