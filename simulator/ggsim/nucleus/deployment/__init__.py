"""Deployments (spec components §5), split as the Java nucleus splits them:

    document.py        the request, validated: parse_request → DeploymentDocument (pure)
    plan.py            roots, versions, configurations: plan_deployment → DeploymentPlan (pure)
    component_hubs.py  what a deployment tells and asks the components (UpdateHub, ValidationHub)
    service.py         DeploymentManager: the queue, activation through the kernel, rollback, persistence
"""

from .component_hubs import UpdateHub, ValidationHub
from .document import (
    LOCAL_GROUP,
    ConfigurationUpdate,
    DeploymentDocument,
    DeploymentRequestError,
    InvalidArtifactsDirectoryPathError,
    InvalidRecipeDirectoryPathError,
    parse_request,
)
from .plan import (
    DeploymentError,
    DeploymentPlan,
    merged_roots,
    next_group_roots,
    plan_deployment,
    resolve_configuration,
)
from .service import ComponentKernel, DeploymentManager

__all__ = [
    "ComponentKernel",
    "ConfigurationUpdate",
    "DeploymentDocument",
    "DeploymentError",
    "DeploymentManager",
    "DeploymentPlan",
    "DeploymentRequestError",
    "InvalidArtifactsDirectoryPathError",
    "InvalidRecipeDirectoryPathError",
    "LOCAL_GROUP",
    "UpdateHub",
    "ValidationHub",
    "merged_roots",
    "next_group_roots",
    "parse_request",
    "plan_deployment",
    "resolve_configuration",
]
