/** The SEV-SNP guest agent: attested TLS, fresh reports, and owner-signed secret injection (runs inside the VM). */
export {
  GuestAgent,
  GuestAgentError,
  GUEST_AGENT_PORT,
  MAX_NONCE_BYTES,
  type GuestAgentOptions,
  type GuestAgentEvent,
  type GuestAgentStats,
  type ReportSource,
} from './agent.js';
