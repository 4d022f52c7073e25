# Slot and coordinator counts per mode, with a mocked AWS provider:
# `terraform test` in modules/fdb (scripts/test-deploy.sh).

mock_provider "aws" {
  mock_data "aws_ssm_parameter" {
    defaults = {
      value = "ami-0123456789abcdef0"
    }
  }
}

variables {
  name              = "fjord-test"
  security_group_id = "sg-0123456789abcdef0"
  subnets = [
    { id = "subnet-a", cidr_block = "10.40.0.0/20", availability_zone = "us-east-1a" },
    { id = "subnet-b", cidr_block = "10.40.16.0/20", availability_zone = "us-east-1b" },
    { id = "subnet-c", cidr_block = "10.40.32.0/20", availability_zone = "us-east-1c" },
  ]
}

run "double_has_three_slots_and_three_coordinators" {
  command = plan

  variables {
    mode = "double"
  }

  assert {
    condition     = length(aws_instance.slot) == 3 && length(aws_network_interface.slot) == 3 && length(aws_ebs_volume.data) == 3
    error_message = "double mode must have 3 slots, each with its own interface and data volume."
  }

  assert {
    condition     = length(output.coordinators) == 3
    error_message = "double mode must have 3 coordinators."
  }

  assert {
    condition     = output.cluster_file == "fjord_test:${substr(sha256("fjord-test/fdb"), 0, 16)}@10.40.0.10:4500,10.40.0.11:4500,10.40.0.12:4500"
    error_message = "the cluster file must be description:id@ip:4500,... with the slots' fixed addresses."
  }

  assert {
    condition     = aws_ssm_parameter.cluster_file.value == output.cluster_file && aws_ssm_parameter.cluster_file.type == "String"
    error_message = "the cluster file must be published to SSM."
  }
}

run "three_data_hall_has_nine_slots_three_per_zone" {
  command = plan

  variables {
    mode = "three_data_hall"
  }

  assert {
    condition     = length(aws_instance.slot) == 9 && length(aws_network_interface.slot) == 9 && length(aws_ebs_volume.data) == 9
    error_message = "three_data_hall mode must have 9 slots."
  }

  assert {
    condition = alltrue([
      for zone in ["us-east-1a", "us-east-1b", "us-east-1c"] :
      length([for v in aws_ebs_volume.data : v if v.availability_zone == zone]) == 3
    ])
    error_message = "three_data_hall mode must put 3 slots in each zone."
  }

  assert {
    condition     = length(output.coordinators) == 9 && length(distinct(output.coordinators)) == 9
    error_message = "three_data_hall mode must have 9 distinct coordinators (3 per data hall)."
  }
}

run "three_data_hall_needs_three_zones" {
  command = plan

  variables {
    mode    = "three_data_hall"
    subnets = [{ id = "subnet-a", cidr_block = "10.40.0.0/20", availability_zone = "us-east-1a" }]
  }

  expect_failures = [terraform_data.checks]
}

run "unknown_mode_is_rejected" {
  command = plan

  variables {
    mode = "single"
  }

  expect_failures = [var.mode]
}
