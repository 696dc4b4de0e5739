# What each job asks for, from one place: the config (threads_per_job, gpus_per_job,
# mem_mb_per_job, runtime_min_per_job for training and evaluation; mem_mb_per_small_job,
# runtime_min_per_small_job for prepare, split and analysis). The rules declare these values
# themselves, mapped to the names snakemake-executor-plugin-slurm turns into sbatch options
# (threads and cpus_per_task -> --cpus-per-task, gpu -> --gpus, mem_mb -> --mem, runtime -> --time),
# so a profile's default-resources cannot replace them. Two guards keep it that way:
# - at start-up, a --set-resources / --set-threads (from a profile or the command line) that would
#   override one of them for these rules is an error naming the config key to change instead;
# - under --executor slurm, before the first submission (onstart: on the head only, never in a
#   job), methods/cluster/slurm_preflight.py asks SLURM whether every job fits some node of its partition,
#   whether sbatch is there, and whether job states can be read without an accounting database.

from methods.cluster.slurm_preflight import JobRequest, SlurmPreflightError, preflight

CONFIG_FILE = ", ".join(map(str, workflow.overwrite_configfiles or [])) or "config/config.yaml"


@dataclass(frozen=True)
class JobResources:
    threads: int
    gpus: int
    mem_mb: int
    runtime_min: int
    sources: dict = field(default_factory=dict, hash=False, compare=False)

    def declare(self):
        """A rule's `resources:` (its `threads:` is `self.threads`)."""
        return dict(cpus_per_task=self.threads, gpu=self.gpus, mem_mb=self.mem_mb, runtime=self.runtime_min)


def _from_config(key):
    """Where a value was set, for messages: 'threads_per_job: 8 in config/paper.yaml'."""
    if key in (workflow.config_settings.config or {}):
        return f"{key}: {config[key]} (--config)"
    return f"{key}: {config[key]} in {CONFIG_FILE}"


RUN_JOB = JobResources(
    threads=config["threads_per_job"],
    gpus=config["gpus_per_job"],
    mem_mb=config["mem_mb_per_job"],
    runtime_min=config["runtime_min_per_job"],
    sources={"cpus": _from_config("threads_per_job"), "gpus": _from_config("gpus_per_job"),
             "mem_mb": _from_config("mem_mb_per_job"), "runtime": _from_config("runtime_min_per_job")},
)
SMALL_JOB = JobResources(
    threads=1,
    gpus=0,
    mem_mb=config["mem_mb_per_small_job"],
    runtime_min=config["runtime_min_per_small_job"],
    sources={"cpus": "one thread, fixed", "mem_mb": _from_config("mem_mb_per_small_job"),
             "runtime": _from_config("runtime_min_per_small_job")},
)
# openTSNE's embedding depends on its thread count, so the analysis job's threads are a setting
# (figures.tsne_jobs), not the machine's core count (workflow.cores, undefined on SLURM)
ANALYSIS_JOB = JobResources(
    threads=(config.get("figures") or {}).get("tsne_jobs", 1),
    gpus=0,
    mem_mb=SMALL_JOB.mem_mb,
    runtime_min=SMALL_JOB.runtime_min,
    sources={**SMALL_JOB.sources, "cpus": f"figures.tsne_jobs: {(config.get('figures') or {}).get('tsne_jobs', 1)}"},
)
JOB_RESOURCES = {"train": RUN_JOB, "evaluate": RUN_JOB, "prepare": SMALL_JOB, "split": SMALL_JOB,
                 "analysis": ANALYSIS_JOB}

# Resource names that would replace a value that comes from the config (or, for gres and
# mem_mb_per_cpu, override it in the plugin's sbatch call), and which config value each replaces.
CONFIG_RESOURCES = {"cpus_per_task": "cpus", "cpus_per_gpu": "cpus", "gpu": "gpus", "gpus": "gpus", "gres": "gpus",
                    "mem": "mem_mb", "mem_mb": "mem_mb", "mem_mib": "mem_mb", "mem_gb": "mem_mb",
                    "mem_mb_per_cpu": "mem_mb", "runtime": "runtime", "walltime": "runtime", "time_min": "runtime"}
DEFAULT_OVERRIDES = ("cpus_per_gpu", "gres", "mem_mb_per_cpu")  # the rules declare all the others


def _raw(value):
    """A resource as the user wrote it (a snakemake Resource, or a plain value)."""
    return getattr(value, "raw", value)


def _check_resource_overrides():
    """A profile's set-resources would replace the config's resources silently: refuse it."""
    settings = workflow.resource_settings
    problems = []
    for rule_name, res in (settings.overwrite_resources or {}).items():
        for name in sorted(set(res) & set(CONFIG_RESOURCES)) if rule_name in JOB_RESOURCES else []:
            replaced = JOB_RESOURCES[rule_name].sources[CONFIG_RESOURCES[name]]
            problems.append(f"set-resources {rule_name}:{name}={_raw(res[name])} overrides {replaced}")
    for rule_name, value in (settings.overwrite_threads or {}).items():
        if rule_name in JOB_RESOURCES:
            problems.append(f"set-threads {rule_name}={_raw(value)} overrides {JOB_RESOURCES[rule_name].sources['cpus']}")
    defaults = settings.default_resources or {}
    for name in DEFAULT_OVERRIDES:
        if name in defaults:
            replaced = RUN_JOB.sources[CONFIG_RESOURCES[name]]
            problems.append(f"default-resources {name}={_raw(defaults[name])} would change every job's SLURM request "
                            f"(e.g. {replaced})")
    if problems and workflow.is_main_process:
        raise WorkflowError(
            "config error: per-job resources come from the config only, but a profile or the command line "
            "overrides them:\n  " + "\n  ".join(problems) + f"\nChange the config key instead (in the config file or "
            "with --config key=value) and remove the entry from the profile or command line (config/README.md, "
            "'Resources').")


_check_resource_overrides()


def _job_request(job):
    """What the executor plugin will ask sbatch for, read from the job as the plugin reads it."""
    res = job.resources
    source = dict(JOB_RESOURCES[job.rule.name].sources) if job.rule.name in JOB_RESOURCES else {}
    source.update(partition="slurm_partition in profiles/slurm/config.yaml",
                  gpu_model="gpu_model in profiles/slurm/config.yaml")
    cpus = res.get("cpus_per_task")
    cpus = job.threads if not isinstance(cpus, int) or cpus <= 0 else cpus
    mem = res.get("mem_mb")
    if isinstance(res.get("mem_mb_per_cpu"), int) and res.get("mem_mb_per_cpu") > 0:
        mem = res.get("mem_mb_per_cpu") * cpus
    gpus = res.get("gpu") or 0
    partitions = tuple(p for p in str(res.get("slurm_partition") or "").replace(" ", ",").split(",") if p)
    runtime = res.get("runtime")
    return JobRequest(
        job.rule.name, cpus=int(cpus), mem_mb=mem if isinstance(mem, int) else None,
        gpus=int(gpus) if isinstance(gpus, int) or str(gpus).isdigit() else 0,
        gpu_model=str(res.get("gpu_model")) if res.get("gpu_model") else None,
        runtime_min=runtime if isinstance(runtime, int) else None, partitions=partitions, sources=source)


def slurm_preflight():
    """Before the first sbatch: fail now, naming the setting, rather than hang in the queue."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm" or not workflow.is_main_process:
        return
    if int(config.get("runs_per_gpu", 1)) > 1:
        raise WorkflowError(f"config error: runs_per_gpu is {config['runs_per_gpu']}, but SLURM gives every job "
                            "whole GPUs of its own; runs_per_gpu applies to local runs (set it to 1 here, or "
                            "share GPUs through your site's MPS or GRES shards)")
    settings = workflow.executor_settings
    requests = list(dict.fromkeys(_job_request(job) for job in workflow.dag.needrun_jobs() if not job.is_local))
    try:
        preflight(
            requests,
            status_command=getattr(settings, "status_command", None),
            init_seconds=int(getattr(settings, "init_seconds_before_status_checks", None) or 40),
            any_partition=bool(getattr(settings, "partition_config", None) or os.environ.get("SNAKEMAKE_SLURM_PARTITIONS")),
        )
    except SlurmPreflightError as exc:
        raise WorkflowError(str(exc)) from None


onstart:
    slurm_preflight()
