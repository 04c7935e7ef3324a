// The push channel's shape, shared by the local broker, AWS IoT Core (its authorizer) and the agent.

/** The topic carrying an agent's wake-ups; it says "fetch your commands", never the commands themselves. */
export const wakeTopic = (agentId: string) => `xpu-reboot/agents/${agentId}/wake`;
