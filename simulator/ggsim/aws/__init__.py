"""Stand-ins for the AWS-provided components that real recipes depend on.

Each is a nucleus-side model in its own module; the IPC services that expose them stay thin:

    catalogue     which components ggsim provides itself, at which versions, and how they are listed
    shadows       aws.greengrass.ShadowManager: local shadows, their pub/sub topics, sync with IoT Core
    secrets       aws.greengrass.SecretManager: the secrets the user gives ggsim
    credentials   aws.greengrass.TokenExchangeService: the container-credentials endpoint for AWS SDKs

Nothing here imports ggsim.ipc; ggsim.core wires these parts to the IPC server and to IoT Core.
"""
