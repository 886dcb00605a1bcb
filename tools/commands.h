// commands.h — the subcommands of `keepalive`. Each takes its own argument
// vector (argv[0] is the subcommand's name) and returns the exit status.
// A new subcommand is one function here, one file tools/cmd_NAME.cc, one
// line in tools/CMakeLists.txt and one line in kCommands (main.cc).
#ifndef KEEPALIVE_TOOLS_COMMANDS_H
#define KEEPALIVE_TOOLS_COMMANDS_H

int keepalive_cmd_run(int argc, char **argv);
int keepalive_cmd_check(int argc, char **argv);
int keepalive_cmd_inspect(int argc, char **argv);
int keepalive_cmd_apply(int argc, char **argv);
int keepalive_cmd_natprobe(int argc, char **argv);
// cmd_unit.cc: a systemd service's drop-in.
int keepalive_cmd_enable(int argc, char **argv);
int keepalive_cmd_disable(int argc, char **argv);
int keepalive_cmd_status(int argc, char **argv);

#endif  // KEEPALIVE_TOOLS_COMMANDS_H
