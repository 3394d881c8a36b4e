"""Prints a CloudFormation YAML template as JSON, with the short-form intrinsic tags in their
long form (`!Ref X` -> {"Ref": "X"}, `!Sub s` -> {"Fn::Sub": "s"}, `!GetAtt A.B` ->
{"Fn::GetAtt": ["A", "B"]}, `!Condition C` -> {"Condition": "C"}), so programs without a
CloudFormation-aware YAML parser can read it (tests/tests/deploy_templates.rs does).

Usage: python cfn_yaml.py TEMPLATE   (needs PyYAML, which infra/lint.sh installs with cfn-lint)
"""

import json
import sys

import yaml


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation tags."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as template:
        document = yaml.load(template, Loader=CloudFormationLoader)  # noqa: S506 (SafeLoader)
    json.dump(document, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
