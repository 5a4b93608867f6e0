//! Agent terminals (`terminal/*`): the policy decides the command; allowed commands run in the
//! sandbox; `ask` asks the user; `deny` returns an error naming the rule.

use std::collections::HashMap;

use airlock_acp::{AgentError, AgentRequest};

use crate::main_loop::State;

#[derive(Default)]
pub struct Terminals {
    #[allow(dead_code)]
    running: HashMap<String, ()>,
}

pub fn on_request(_state: &mut State, request: AgentRequest) {
    let err = || AgentError::denied("terminals are not available in this build of airlock");
    match request {
        AgentRequest::CreateTerminal { respond, .. } => drop(respond.send(Err(err()))),
        AgentRequest::TerminalOutput { respond, .. } => drop(respond.send(Err(err()))),
        AgentRequest::WaitForTerminalExit { respond, .. } => drop(respond.send(Err(err()))),
        AgentRequest::KillTerminal { respond, .. } => drop(respond.send(Err(err()))),
        AgentRequest::ReleaseTerminal { respond, .. } => drop(respond.send(Err(err()))),
        _ => {}
    }
}
