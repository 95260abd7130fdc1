/* Subcommands of the dmvjnd command; each lives in cli/cmd_<name>.c and is
 * a thin layer over the public C API. argv[0] is the subcommand name. */
#ifndef DMVJND_CLI_COMMANDS_H
#define DMVJND_CLI_COMMANDS_H

int cmd_bench(int argc, char **argv);
int cmd_train_classifier(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_cam(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compress(int argc, char **argv);

#endif
