using System.CommandLine;
using SecureMnist.Cli;
using SecureMnist.Cli.Commands;

var root = new RootCommand("""
    securemnist: train, attack, defend and serve an MNIST classifier, with evidence.

    Start here:
      ./securemnist data fetch          download and verify the real MNIST files
      ./securemnist assess              the whole assessment (train, attack, defend, poison, sign, serve): report.html
      ./securemnist train               train the seeds' CNN, write a signed model package
      ./securemnist evaluate --model models/baseline
      ./securemnist attack --model models/baseline --attacks fgsm,pgd
      ./securemnist poison && ./securemnist train --dataset data/mnist-backdoor --out models/backdoor
      ./securemnist api-keys add --id me --scope predict && ./securemnist serve --model models/baseline
    """);
root.Options.Add(CommonOptions.DataRoot);
root.Options.Add(CommonOptions.Threads);
root.Subcommands.Add(DataCommands.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(EvaluateCommand.Create());
root.Subcommands.Add(AttackCommand.Create());
root.Subcommands.Add(CompareCommand.Create());
root.Subcommands.Add(RobustnessChecksCommand.Create());
root.Subcommands.Add(MembershipCommand.Create());
root.Subcommands.Add(InvertCommand.Create());
root.Subcommands.Add(ExtractCommand.Create());
foreach (var command in PoisoningCommands.Create()) root.Subcommands.Add(command);
root.Subcommands.Add(PoisonBenchCommand.Create());
foreach (var command in PackageCommands.Create()) root.Subcommands.Add(command);
foreach (var command in InteropCommands.Create()) root.Subcommands.Add(command);
foreach (var command in ServiceCommands.Create()) root.Subcommands.Add(command);
root.Subcommands.Add(AssessCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return CommandRunner.Run(root, args);
