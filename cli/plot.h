/* Figures of a training run: tools/plot_training.py (python3-matplotlib)
 * turns the CSV log into PNGs and plots.json. The library draws nothing. */
#ifndef DMVJND_CLI_PLOT_H
#define DMVJND_CLI_PLOT_H

/* Runs the script on csv, writing into dir. The script is
 * $DMVJND_PLOT_SCRIPT, else tools/plot_training.py next to the program's
 * folder (build/../tools), else ./tools/plot_training.py; python is
 * $DMVJND_PYTHON, else /usr/bin/python3, else python3 on PATH (the first
 * with matplotlib). A missing python3,
 * matplotlib or script, or a failing script, prints a warning on stderr:
 * plots are never worth failing a training run for. Returns 1 when the
 * plots were written, 0 otherwise. */
int cli_plot_training(const char *csv, const char *dir);

#endif
