//! One module per subcommand. Each exposes `Args` (or `Command`) and `run(..) -> anyhow::Result<ExitCode>`.

pub mod agent;
pub mod audit;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod policy;
pub mod serve;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    the operation failed or found a problem (see the message on stderr)
  2    usage error
  exec: the command's own exit code; 128+N if it was killed by signal N;
        125 sandbox setup failed, 126 not executable, 127 command not found";
