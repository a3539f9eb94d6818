"""study — the modules behind launch/scaling-study, launch/scaling-report and launch/hardware-guide.

  perfmodel   the model constants (hardware-model.json here, each with its source), the models
              built on them, the machine description, the study files, Markdown helpers
  hwguide     the figures of launch/hardware-guide: its inputs, the measured and modelled rows
  hwmeasure   launch/hardware-guide --measure: the trainings and benches it runs on this machine
  commratio   scaling-report's compute-to-communication section (flops per gradient byte)
  plots       the plots of launch/scaling-report (matplotlib)
  torch_ref   the PyTorch reference benchmark (a script: launch/study/torch_ref.py --help)

The import root is launch/: Python puts a script's own directory first on sys.path, so the
entry scripts in launch/ say `from study import perfmodel` and nothing else; the modules import
one another relatively. Standard library only, but for plots (matplotlib) and torch_ref (torch).
"""
